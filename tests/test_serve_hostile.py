"""The server on hostile films: 4xx with a reason, never 5xx, never a label without finite
probabilities; decodes run in a worker pool; the security checks of issue 11."""

from __future__ import annotations

import ast
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402
import torch  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

import cxrkit.models.inference as inference  # noqa: E402
import cxrkit.serve.app as app_module  # noqa: E402
from bad_files import encode, hostile_window_dicom, noisy_film, rle_panic_dicom  # noqa: E402
from cxrkit.io.pool import DecodePool  # noqa: E402
from cxrkit.serve import ServeSettings, create_app  # noqa: E402
from serve_helpers import save_random_model  # noqa: E402

SRC = Path(__file__).resolve().parents[1] / "src" / "cxrkit"
FAULTY = [sys.executable, str(Path(__file__).with_name("faulty_decode_worker.py"))]
TOKEN = "hostile-token"
PNG = encode(noisy_film(64), "PNG")


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("hostile-model") / "model.safetensors")


@pytest.fixture(scope="module")
def client(model_file: Path) -> Iterator[TestClient]:
    """A token-protected app whose decode pool runs the fault-injecting worker."""
    settings = ServeSettings(token=TOKEN, decode_workers=1, decode_timeout_s=2.0)
    app = create_app(model_file, settings=settings)
    predictor = app.state.predictor
    predictor.decode_pool.close()
    predictor.decode_pool = DecodePool(
        2, memory_mb=512, timeout_s=2.0, max_pixels=settings.max_pixels, worker_argv=FAULTY
    )
    with TestClient(app) as c:
        c.headers["Authorization"] = f"Bearer {TOKEN}"
        yield c
    predictor.decode_pool.close()


def _post(client: TestClient, data: bytes, name: str = "f.dcm") -> httpx.Response:
    return client.post("/v1/predict", files={"file": (name, data, "application/octet-stream")})


def _assert_good_answer(response: httpx.Response) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    probs = body["probabilities"]
    assert body["label"] is not None and probs is not None
    assert all(v is not None and 0.0 <= v <= 1.0 for v in probs.values())


def test_rle_panic_is_a_422_and_the_server_keeps_serving(client: TestClient) -> None:
    """Regression (issue 11): a pyo3 PanicException from the RLE decoder gave HTTP 500."""
    response = _post(client, rle_panic_dicom(), "panic.dcm")
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "corrupt_image" and "PanicException" in body["detail"]
    assert "\n" not in body["detail"] and body["detail"].startswith("panic.dcm:")
    _assert_good_answer(_post(client, PNG, "good.png"))


@pytest.mark.parametrize(
    ("center", "width", "function"),
    [
        (1e308, 1e308, None),
        (40.0, 1e-30, None),
        (40.0, 1e-30, "LINEAR_EXACT"),
        (100.0, 1e-300, "SIGMOID"),
        (float("nan"), 100.0, None),
    ],
)
def test_hostile_window_never_answers_null_probabilities(
    client: TestClient, center: float, width: float, function: str | None
) -> None:
    """Regression (issue 11): a window of 1e308 gave 200 with label 'normal' and nulls."""
    response = _post(client, hostile_window_dicom(center, width, function), "window.dcm")
    if response.status_code == 200:
        _assert_good_answer(response)
    else:
        assert 400 <= response.status_code < 500, response.text


def test_nan_model_output_is_a_422_without_label(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def nan_probs(logits: torch.Tensor, task: str) -> torch.Tensor:
        return torch.full(logits.shape, float("nan"))

    monkeypatch.setattr(inference, "logits_to_probs", nan_probs)  # the torch forward
    response = _post(client, PNG, "good.png")
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "no_prediction" and "label" not in body
    assert "non-finite" in body["detail"]


@pytest.mark.parametrize(
    ("payload", "code", "words"),
    [
        (b"SEGV", "decoder_crashed", "SIGSEGV"),
        (b"HANG", "decode_timeout", "longer than 2 s"),
        (b"BOMB", "too_many_pixels", "memory limit"),
    ],
)
def test_dead_hung_or_greedy_decoder_is_a_4xx_then_good_films_work(
    client: TestClient, payload: bytes, code: str, words: str
) -> None:
    response = _post(client, payload, "evil.png")
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"] == code and words in response.json()["detail"]
    _assert_good_answer(_post(client, PNG, "good.png"))


def test_default_settings_decode_in_a_pool(model_file: Path) -> None:
    app = create_app(model_file, settings=ServeSettings(token=None))
    with TestClient(app) as c:
        assert isinstance(app.state.predictor.decode_pool, DecodePool)
        _assert_good_answer(_post(c, PNG, "good.png"))
        assert app.state.predictor.decode_pool.stats.decodes == 1


# --- security pass (issue 11, item 5) -------------------------------------------------


def test_token_is_compared_in_constant_time(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[bytes, bytes]] = []
    real = app_module.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        seen.append((a, b))
        return real(a, b)

    monkeypatch.setattr(app_module.hmac, "compare_digest", spy)
    assert client.get("/v1/model", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/v1/model").status_code == 200
    assert seen == [(b"wrong", TOKEN.encode()), (TOKEN.encode(), TOKEN.encode())]


def test_cors_is_off_by_default(client: TestClient) -> None:
    origin = {"Origin": "https://evil.example"}
    preflight = client.options(
        "/v1/predict", headers={**origin, "Access-Control-Request-Method": "POST"}
    )
    assert "access-control-allow-origin" not in preflight.headers
    for path in ("/healthz", "/v1/model", "/"):
        response = client.get(path, headers=origin)
        assert "access-control-allow-origin" not in response.headers, path


def test_no_request_value_reaches_the_file_system(model_file: Path) -> None:
    """Every file the server opens while answering is named by the server, not the client."""
    marker = "zz-marker-from-the-request"
    opened: list[str] = []
    armed = [False]

    def hook(event: str, args: tuple) -> None:
        if armed[0] and event in ("open", "os.rename", "os.remove", "os.mkdir", "os.symlink"):
            opened.append(" ".join(str(a) for a in args))

    sys.addaudithook(hook)
    app = create_app(model_file, settings=ServeSettings(token=None, decode_workers=0))
    with TestClient(app) as c:
        armed[0] = True
        try:
            for name in (f"../../{marker}.png", f"/tmp/{marker}.png", f"{marker}.png"):
                r = c.post("/v1/predict", files={"file": (name, PNG, "image/png")})
                assert r.status_code == 200 and r.json()["filename"] == f"{marker}.png"
            r = c.get(f"/static/../../{marker}")
            assert r.status_code == 404
            with open(os.devnull, "rb"):  # the hook is live: it sees this one
                pass
        finally:
            armed[0] = False
    assert any(os.devnull in line for line in opened)
    assert not [line for line in opened if marker in line]


def test_request_size_limits_exist() -> None:
    settings = ServeSettings()
    assert settings.max_upload_bytes <= 64 * 1024 * 1024
    assert settings.max_body_bytes == settings.max_upload_bytes + settings.multipart_slack
    assert 0 < settings.max_pixels <= 100_000_000 and settings.max_queue > 0


def test_every_torch_load_in_src_is_weights_only() -> None:
    calls = []
    for path in SRC.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "load"
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "torch"
            ):
                kw = {k.arg: k.value for k in node.keywords}
                ok = (
                    isinstance(kw.get("weights_only"), ast.Constant)
                    and kw["weights_only"].value is True
                )
                calls.append((f"{path.relative_to(SRC)}:{node.lineno}", ok))
    assert calls, "expected torch.load calls in src"
    assert [where for where, ok in calls if not ok] == []


def test_no_pickle_loads_in_src() -> None:
    """No unpickling anywhere (np.load refuses pickles unless allow_pickle=True)."""
    offenders = []
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        for needle in ("pickle.load", "allow_pickle=True", "dill.load", "joblib.load"):
            if needle in text:
                offenders.append(f"{path.relative_to(SRC)}: {needle}")
    assert offenders == []


def test_probabilities_of_a_real_answer_are_finite(client: TestClient) -> None:
    body = _post(client, PNG, "good.png").json()
    assert np.isfinite(list(body["probabilities"].values())).all()
