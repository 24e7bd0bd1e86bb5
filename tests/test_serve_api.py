"""The REST API on a real film: probabilities, card, health, CAM and optional extras."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402
from PIL import Image  # noqa: E402

from cxrkit.classifier.api import predict  # noqa: E402
from cxrkit.serve import ServeSettings, create_app  # noqa: E402
from serve_helpers import CLASSES, kermany_films, save_random_model  # noqa: E402


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("serve-model") / "model.safetensors")


@pytest.fixture(scope="module")
def client(model_file: Path) -> TestClient:
    with TestClient(create_app(model_file, settings=ServeSettings(token=None))) as c:
        yield c


@pytest.fixture(scope="module")
def film(kermany_dir: Path) -> Path:
    return kermany_films(kermany_dir, 1)[0]


def _png(b64: str) -> Image.Image:
    return Image.open(io.BytesIO(base64.b64decode(b64)))


def test_health_is_open_and_ok(client: TestClient) -> None:
    r = client.get("/healthz")
    assert r.status_code == 200 and r.json()["status"] == "ok"


def test_model_card_lists_classes_preprocessing_metrics_without_server_paths(
    client: TestClient,
) -> None:
    card = client.get("/v1/model").json()
    assert card["class_names"] == list(CLASSES)
    assert card["preprocessing"]["size"] == 128
    assert card["metrics"]["test"]["auc"] == 0.5
    assert card["runtime"] == "torch"
    assert card["training"]["data"] == "kermany"  # the server's absolute path is not shown
    assert "config" not in card["training"]
    assert set(card["extras"]) == {"polarity", "not_cxr", "cam"}


def test_predict_png_matches_the_python_api(client: TestClient, film: Path, model_file: Path):
    r = client.post("/v1/predict", files={"file": ("film.png", film.read_bytes(), "image/png")})
    assert r.status_code == 200, r.text
    body = r.json()
    expected = predict(model_file, [film], num_workers=0, screen=False)[0]
    assert set(body["probabilities"]) == set(CLASSES)
    for c in CLASSES:
        assert body["probabilities"][c] == pytest.approx(expected["probabilities"][c], abs=1e-6)
    assert body["label"] == expected["label"]
    assert body["format"] == "png" and body["original_size"] == [224, 224]
    assert body["cam"] is None and "not requested" in body["unavailable"]["cam"]
    assert r.headers["cache-control"] == "no-store"


def test_type_comes_from_content_not_name(client: TestClient, film: Path) -> None:
    r = client.post("/v1/predict", files={"file": ("scan.dcm", film.read_bytes(), "text/plain")})
    assert r.status_code == 200 and r.json()["format"] == "png"


def test_predict_jpeg_and_dicom(client: TestClient, film: Path, tmp_path: Path) -> None:
    from dicom_factory import png_pixels, write_dicom

    pixels = png_pixels(film)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=95)
    dcm = write_dicom(tmp_path / "film.dcm", pixels, photometric="MONOCHROME1")
    for name, data, fmt in (("a.jpg", buf.getvalue(), "jpeg"), ("b", dcm.read_bytes(), "dicom")):
        r = client.post("/v1/predict", files={"file": (name, data)})
        assert r.status_code == 200, r.text
        assert r.json()["format"] == fmt
        assert sum(r.json()["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
    assert r.json()["inverted_on_read"] is True  # MONOCHROME1 flipped on read


def test_extras_are_filled_or_null_with_a_reason(client: TestClient, film: Path) -> None:
    r = client.post(
        "/v1/predict?cam=true&preview=true", files={"file": ("f.png", film.read_bytes())}
    )
    body = r.json()
    assert _png(body["preview_png"]).size == (224, 224)
    for key in ("polarity", "not_cxr", "cam"):
        assert key in body
        if body[key] is None:
            assert body["unavailable"][key], key
    if body["polarity"] is not None:
        assert body["polarity"]["label"] in ("positive", "negative")
        assert isinstance(body["not_cxr"]["flag"], bool)
    if body["cam"] is not None:
        heat = _png(body["cam"]["heatmap_png"])
        assert heat.size == (224, 224) and heat.mode == "RGBA"
        assert _png(body["cam"]["overlay_png"]).mode == "RGB"
        assert body["cam"]["class"] == body["label"]


def test_openapi_documents_the_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/model", "/healthz"} <= set(paths)
    assert client.get("/docs").status_code == 200


def test_page_and_assets_are_served_with_a_strict_policy(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200 and "<title>cxrkit" in r.text
    assert "default-src 'self'" in r.headers["content-security-policy"]
    assert "http" not in r.text.replace("http-equiv", "")  # no CDN
    for asset in ("app.js", "style.css"):
        assert client.get(f"/static/{asset}").status_code == 200


def test_onnx_runtime_server_gives_the_same_probabilities(model_file: Path, film: Path) -> None:
    app = create_app(model_file, settings=ServeSettings(token=None), runtime="onnx")
    with TestClient(app) as c:
        body = c.post("/v1/predict", files={"file": ("f.png", film.read_bytes())}).json()
        assert c.get("/v1/model").json()["runtime"] == "onnx"
    expected = predict(model_file, [film], num_workers=0, screen=False)[0]["probabilities"]
    got = np.array([body["probabilities"][c] for c in CLASSES])
    assert np.abs(got - np.array([expected[c] for c in CLASSES])).max() <= 1e-5
    assert body["runtime"] == "onnx"
