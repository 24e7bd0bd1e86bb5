"""Server micro-batching: concurrent uploads share forwards, answers match one-at-a-time,
a full queue answers 503 + Retry-After; and the `MicroBatcher` on its own."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

from cxrkit.serve import ServeSettings, create_app  # noqa: E402
from cxrkit.serve.batcher import MicroBatcher, QueueFull  # noqa: E402
from serve_helpers import kermany_films, save_random_model, serve_in_thread  # noqa: E402


def test_batcher_groups_keeps_order_and_bounds_its_queue() -> None:
    gate = threading.Event()
    seen: list[int] = []

    def fn(items: list[int]) -> list[int]:
        gate.wait(5)
        seen.append(len(items))
        return [i * 10 for i in items]

    b = MicroBatcher(fn, max_batch=4, max_wait_ms=1, max_queue=6)
    try:
        first = b.submit(0)  # taken at once; fn blocks on the gate
        time.sleep(0.05)
        futures = [b.submit(i) for i in range(1, 7)]  # queue: 6 items, full
        with pytest.raises(QueueFull):
            b.submit(99)
        gate.set()
        assert first.result(5) == 0
        assert [f.result(5) for f in futures] == [i * 10 for i in range(1, 7)]
        assert seen == [1, 4, 2]  # the 6 that queued meanwhile: full batch, then the rest
        assert b.stats()["largest_batch"] == 4
    finally:
        b.close()


def test_batcher_passes_a_batch_error_to_each_caller() -> None:
    def fn(items: list[int]) -> list[int]:
        raise ValueError("model broke")

    b = MicroBatcher(fn, max_batch=2, max_wait_ms=1)
    try:
        with pytest.raises(ValueError, match="model broke"):
            b.submit(1).result(5)
        assert b.submit(2).exception(5) is not None  # the thread lives on
    finally:
        b.close()


def _post(base: str, film: Path) -> httpx.Response:
    with film.open("rb") as fh:
        return httpx.post(f"{base}/v1/predict", files={"file": (film.name, fh)}, timeout=60)


def test_concurrent_uploads_share_forwards_and_match(tmp_path: Path, kermany_dir: Path) -> None:
    model = save_random_model(tmp_path / "model.safetensors")
    films = kermany_films(kermany_dir, 8)
    settings = ServeSettings(token=None, rate_limit=0, max_batch=8, batch_wait_ms=50)
    app = create_app(model, settings=settings)
    predictor, gate = app.state.predictor, app.state.gate
    alone = [predictor.predict(f.read_bytes(), f.name) for f in films]  # batch of one
    with serve_in_thread(app) as base, ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(lambda f: _post(base, f), films))
    assert [a.status_code for a in answers] == [200] * len(films)
    for got, want in zip((a.json() for a in answers), alone, strict=True):
        assert got["filename"] == want["filename"] and got["label"] == want["label"]
        for c, p in want["probabilities"].items():
            assert np.isclose(got["probabilities"][c], p, atol=1e-5)
        for key in ("polarity", "not_cxr"):  # screening: same verdicts, probabilities close
            assert got[key].keys() == want[key].keys()
            for k, v in want[key].items():
                assert (
                    np.isclose(got[key][k], v, atol=1e-5)
                    if isinstance(v, float)
                    else (got[key][k] == v)
                )
    assert gate.batcher.stats()["largest_batch"] > 1  # some uploads shared a forward


def test_full_server_answers_503_with_retry_after(tmp_path: Path, kermany_dir: Path) -> None:
    model = save_random_model(tmp_path / "model.safetensors")
    film = kermany_films(kermany_dir, 1)[0]
    app = create_app(model, settings=ServeSettings(token=None, rate_limit=0, max_queue=2))
    gate, release = app.state.gate, threading.Event()
    run_batch = gate.batcher.fn

    def held(items):  # the model "busy" until released
        release.wait(20)
        return run_batch(items)

    gate.batcher.fn = held
    with serve_in_thread(app) as base, ThreadPoolExecutor(2) as pool:
        admitted = [pool.submit(_post, base, film) for _ in range(2)]
        deadline = time.time() + 20
        while gate.pending < 2 and time.time() < deadline:
            time.sleep(0.01)
        refused = _post(base, film)
        release.set()
        assert [f.result().status_code for f in admitted] == [200, 200]
    assert refused.status_code == 503
    assert refused.json()["error"] == "busy"
    assert int(refused.headers["retry-after"]) >= 1
