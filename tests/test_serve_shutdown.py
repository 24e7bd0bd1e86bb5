"""Graceful shutdown of a real `cxr serve`: SIGTERM mid-flight, every request answered, exit 0."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

import httpx  # noqa: E402

from serve_helpers import CXR, free_port, save_random_model, wait_healthy  # noqa: E402

IN_FLIGHT = 12
EXIT_BOUND_S = 60.0


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("shutdown-model") / "model.safetensors")


def _start(model: Path, port: int, *args: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "CXR_API_TOKEN"}
    cmd = [str(CXR), "serve", str(model), "--host", "127.0.0.1", "--port", str(port), *args]
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _children(pid: int) -> set[int]:
    """Child pids of `pid` (every thread's children file)."""
    kids: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids |= {int(k) for k in (task / "children").read_text().split()}
    return kids


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_sigterm_finishes_in_flight_requests_and_exits_0(
    model_file: Path, samples_dir: Path
) -> None:
    film = (samples_dir / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm").read_bytes()
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = _start(model_file, port, "--decode-workers", "2")
    try:
        wait_healthy(base, proc)
        warm = httpx.post(f"{base}/v1/predict", files={"file": ("w.dcm", film)}, timeout=120)
        assert warm.status_code == 200, warm.text
        workers = _children(proc.pid)
        assert workers, "the decode pool should have started its workers"

        results: list[tuple[int, float, dict]] = []
        lock = threading.Lock()

        def post(k: int) -> None:
            r = httpx.post(
                f"{base}/v1/predict?cam=true&preview=true",
                files={"file": (f"{k}.dcm", film)},
                timeout=120,
            )
            with lock:
                results.append((r.status_code, time.monotonic(), r.json()))

        threads = [threading.Thread(target=post, args=(k,)) for k in range(IN_FLIGHT)]
        for t in threads:
            t.start()
        time.sleep(0.3)  # every request is sent; the server works through them one by one
        signalled = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(timeout=EXIT_BOUND_S + 60)
        code = proc.wait(timeout=EXIT_BOUND_S)
        took = time.monotonic() - signalled
    finally:
        _stop(proc)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    assert len(results) == IN_FLIGHT
    assert [status for status, _, _ in results] == [200] * IN_FLIGHT, results
    for _, _, body in results:
        assert body["label"] is not None and body["cam"] is not None and body["preview_png"]
    late = sum(done > signalled for _, done, _ in results)
    assert late > 0, "every request finished before SIGTERM: nothing was in flight"
    assert code == 0, stderr[-2000:]
    assert took < EXIT_BOUND_S
    assert "Traceback" not in stderr, stderr[-2000:]
    assert "in-flight requests finished" in stderr
    deadline = time.monotonic() + 10
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(w) for w in workers), "decode workers outlived the server"
    with pytest.raises(httpx.ConnectError):  # nothing listens any more
        httpx.get(f"{base}/healthz", timeout=5)


def test_sigint_on_an_idle_server_exits_0(model_file: Path) -> None:
    port = free_port()
    proc = _start(model_file, port, "--decode-workers", "1")
    try:
        wait_healthy(f"http://127.0.0.1:{port}", proc)
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=EXIT_BOUND_S)
    finally:
        _stop(proc)
    stderr = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    assert code == 0, stderr[-2000:]
    assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
