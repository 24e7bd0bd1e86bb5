"""Shared by the serve / export / web tests: a tiny model file, films, live servers."""

from __future__ import annotations

import contextlib
import os
import socket
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from pathlib import Path

import httpx

CLASSES = ("normal", "pneumonia")
CXR = Path(sys.executable).parent / "cxr"


def save_random_model(path: Path, arch: str = "small_cnn", seed: int = 0) -> Path:
    """A random-init cxrkit model file with a card like the train runner writes."""
    import torch

    from cxrkit.models import create_model
    from cxrkit.models.model_file import save_model_file

    torch.manual_seed(seed)
    net = create_model(arch, len(CLASSES), random_init=True)
    card = card_fields(arch, "binary", list(CLASSES), [0.5])
    card["metrics"] = {"test": {"auc": 0.5, "n": 10}}
    return save_model_file(path, net, card)


def card_fields(arch: str, task: str, classes: list[str], thresholds: list[float]) -> dict:
    """The card JSON the train runner writes for a random `arch` model (format 1 fields)."""
    from cxrkit.models import get_spec

    spec = get_spec(arch)
    return {
        "architecture": arch,
        "model_kwargs": {"head_hidden": None, "dropout": 0.0},
        "task": task,
        "class_names": classes,
        "label_column": "label",
        "preprocessing": {
            "size": spec.input_size,
            "resize_mode": "squash",
            "channels": "grayscale",
            "input_range": [0.0, 1.0],
            "mean": list(spec.mean),
            "std": list(spec.std),
            "normalization": "applied inside the network",
        },
        "thresholds": thresholds,
        "threshold_method": "youden",
        "training": {"data": "/secret/server/path/kermany", "mode": "test", "config": {}},
    }


def kermany_films(kermany_dir: Path, n: int) -> list[Path]:
    """The first n films (sorted) of the shared kermany set."""
    return sorted((kermany_dir / "images").glob("*.png"))[:n]


def png_bomb(width: int = 40000, height: int = 40000) -> bytes:
    """A few hundred bytes of PNG whose header declares width x height pixels."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1) * 2)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(base: str, proc: subprocess.Popen | None = None, timeout: float = 90) -> None:
    """Poll /healthz until it answers 200 (or fail, showing the server's exit)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return
        time.sleep(0.2)
    raise TimeoutError(f"{base} not healthy after {timeout} s")


@contextlib.contextmanager
def serve_subprocess(
    model: Path, *args: str, env: dict[str, str] | None = None
) -> Iterator[tuple[str, subprocess.Popen]]:
    """`cxr serve MODEL` on a free loopback port; yields (base URL, process)."""
    port = free_port()
    proc = subprocess.Popen(
        [str(CXR), "serve", str(model), "--host", "127.0.0.1", "--port", str(port), *args],
        env={**os.environ, **(env or {})},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        yield base, proc
    finally:
        stop_process(proc, timeout=10)


def stop_process(proc: subprocess.Popen, timeout: float) -> None:
    """SIGTERM a server process, then SIGKILL it if it has not exited within `timeout` s."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextlib.contextmanager
def serve_in_thread(app: object) -> Iterator[str]:
    """Run an ASGI app with uvicorn in a background thread on a free port; yields its URL."""
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, timeout=30)
        yield base
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
