"""Per-client rate limit of the server: token buckets, 429 with Retry-After, never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from bad_files import encode, noisy_film  # noqa: E402
from cxrkit.serve import ServeSettings, create_app  # noqa: E402
from cxrkit.serve.ratelimit import TokenBuckets, client_key, parse_rate  # noqa: E402
from serve_helpers import serve_in_thread  # noqa: E402
from site_helpers import assert_one_line_error, run_cxr, tiny_model_file  # noqa: E402

TOKEN = "rate-token"
PNG = encode(noisy_film(64), "PNG")


class FakeClock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_file(tmp_path_factory.mktemp("rate-model") / "model.safetensors")


@pytest.fixture()
def limited(model_file: Path) -> Iterator[TestClient]:
    """An app allowing 1 request/s per client with a burst of 3 (in-process decodes)."""
    settings = ServeSettings(token=None, rate_limit=1.0, rate_burst=3, decode_workers=0)
    with TestClient(create_app(model_file, settings=settings)) as c:
        yield c


@pytest.mark.parametrize(
    ("text", "rate"),
    [("20/s", 20.0), ("600/min", 10.0), ("7200/h", 2.0), ("0.5/s", 0.5), ("off", 0.0), ("0", 0.0)],
)
def test_parse_rate(text: str, rate: float) -> None:
    assert parse_rate(text) == pytest.approx(rate)


@pytest.mark.parametrize("text", ["20", "fast", "20/fortnight", "-3/s", "/s"])
def test_parse_rate_refuses_nonsense(text: str) -> None:
    with pytest.raises(ValueError, match="N/s"):
        parse_rate(text)


def test_bucket_allows_a_burst_then_the_rate() -> None:
    clock = FakeClock()
    buckets = TokenBuckets(rate=2.0, burst=3, clock=clock)
    assert [buckets.take("a") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert buckets.take("a") == pytest.approx(0.5)  # one token comes back in 1/2 s
    assert buckets.take("b") == 0.0  # another client has its own bucket
    clock.now += 0.5
    assert buckets.take("a") == 0.0
    assert buckets.take("a") > 0.0
    clock.now += 100.0  # idle: refills to the burst, never beyond
    assert [buckets.take("a") for _ in range(4)][-1] > 0.0


def test_bucket_map_is_bounded() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1, max_keys=50, clock=FakeClock())
    for i in range(1000):
        buckets.take(f"ip:10.0.{i // 256}.{i % 256}")
    assert len(buckets) == 50


def test_client_key_is_the_ip_or_the_valid_token() -> None:
    scope = {"client": ("10.1.2.3", 5555), "headers": []}
    assert client_key(scope, None) == "ip:10.1.2.3"
    assert client_key(scope, TOKEN) == "ip:10.1.2.3"
    good = {**scope, "headers": [(b"authorization", f"Bearer {TOKEN}".encode())]}
    bad = {**scope, "headers": [(b"authorization", b"Bearer guess")]}
    assert client_key(good, TOKEN) == "token"
    assert client_key(bad, TOKEN) == "ip:10.1.2.3"  # wrong tokens cannot buy new buckets
    assert client_key(good, None) == "ip:10.1.2.3"


def test_over_the_limit_is_429_with_retry_after(limited: TestClient) -> None:
    codes = [limited.get("/v1/model").status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    r = limited.post("/v1/predict", files={"file": ("f.png", PNG)})
    assert r.status_code == 429
    assert r.json()["error"] == "rate_limited" and "retry" in r.json()["detail"]
    assert int(r.headers["retry-after"]) >= 1
    assert r.headers["x-content-type-options"] == "nosniff"
    assert limited.get("/healthz").status_code == 200  # liveness is never limited


def test_valid_token_has_its_own_bucket(model_file: Path) -> None:
    settings = ServeSettings(token=TOKEN, rate_limit=0.5, rate_burst=2, decode_workers=0)
    with TestClient(create_app(model_file, settings=settings)) as c:
        wrong = {"Authorization": "Bearer nope"}
        assert [c.get("/v1/model", headers=wrong).status_code for _ in range(3)] == [
            401,
            401,
            429,
        ]
        right = {"Authorization": f"Bearer {TOKEN}"}
        assert c.get("/v1/model", headers=right).status_code == 200


def test_rate_limit_off(model_file: Path) -> None:
    settings = ServeSettings(token=None, rate_limit=0.0, decode_workers=0)
    with TestClient(create_app(model_file, settings=settings)) as c:
        assert {c.get("/v1/model").status_code for _ in range(30)} == {200}


def test_concurrent_flood_gets_200_or_429_never_5xx(model_file: Path) -> None:
    """Real uvicorn on loopback: 8 threads x 10 posts against 5/s, burst 10."""
    settings = ServeSettings(token=None, rate_limit=5.0, rate_burst=10, decode_workers=1)
    app = create_app(model_file, settings=settings)
    with serve_in_thread(app) as base:

        def post(_: int) -> int:
            r = httpx.post(f"{base}/v1/predict", files={"file": ("f.png", PNG)}, timeout=60)
            return r.status_code

        with ThreadPoolExecutor(8) as pool:
            codes = list(pool.map(post, range(80)))
        assert set(codes) <= {200, 429}, codes
        assert 10 <= codes.count(200) < 80 and codes.count(429) > 0
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 200
    app.state.predictor.decode_pool.close()


def test_cli_refuses_a_bad_rate(model_file: Path) -> None:
    code, _, err = run_cxr("serve", model_file, "--rate-limit", "lots")
    assert_one_line_error(code, err, "--rate-limit")
