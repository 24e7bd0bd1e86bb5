"""Load test of `cxr serve` on loopback: N concurrent clients posting films for a while.

Starts `cxr serve MODEL` on a free 127.0.0.1 port (or uses --url, loopback only), runs
--clients threads that each post kermany films one after another for --duration seconds,
and reports requests, errors, p50/p95/p99 latency and the server's RSS (start/peak/end).

    .venv/bin/python benchmarks/serve_load.py [--duration 120] [--clients 8] [--runtime onnx]

Without --model it serves a random-init DenseNet-121 (224 px), as in predict_throughput.py.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "kermany_pneumonia"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, run the load, print and return the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="model file / .onnx (default: DenseNet-121)")
    ap.add_argument("--runtime", default="onnx", choices=["torch", "onnx", "openvino", "onnx-int8"])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--films", type=int, default=50, help="distinct films cycled over")
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    ap.add_argument("--url", default=None, help="an already running server (loopback only)")
    ap.add_argument("--out", default=None, help="write the report as JSON here")
    args = ap.parse_args(argv)
    films = [p.read_bytes() for p in sorted((Path(args.data) / "images").glob("*.png"))]
    films = films[: args.films]
    if not films:
        raise SystemExit(f"no films under {args.data}/images")
    with tempfile.TemporaryDirectory(prefix="cxr-load-") as tmp:
        if args.url:
            if urlparse(args.url).hostname not in LOOPBACK:
                raise SystemExit("--url must be a loopback address (127.0.0.1)")
            report = run_load(args.url.rstrip("/"), films, args.clients, args.duration, None)
        else:
            model = Path(args.model) if args.model else default_model(Path(tmp))
            with server(model, args.runtime) as (base, pid):
                report = run_load(base, films, args.clients, args.duration, pid)
    report["runtime"] = args.runtime
    print(json.dumps({k: v for k, v in report.items() if k != "rss_samples_mb"}, indent=2))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    return report


def default_model(tmp: Path) -> Path:
    """A random-init DenseNet-121 model file (as in benchmarks/predict_throughput.py)."""
    sys.path.insert(0, str(Path(__file__).parent))
    from predict_throughput import make_models

    model, _ = make_models(tmp)
    return model


class server:  # noqa: N801 - used as a context manager, like open()
    """`cxr serve MODEL` on a free loopback port; yields (base URL, server pid)."""

    def __init__(self, model: Path, runtime: str) -> None:
        import socket

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.cmd = [
            str(BIN / "cxr"),
            "serve",
            str(model),
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--runtime",
            runtime,
            "--rate-limit",  # one loopback IP stands for many clients: measure capacity
            "off",
        ]

    def __enter__(self) -> tuple[str, int]:
        env = {**os.environ}
        env.pop("CXR_API_TOKEN", None)
        self.proc = subprocess.Popen(
            self.cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        base = f"http://127.0.0.1:{self.port}"
        deadline = time.time() + 180
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}")
            try:
                if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                    return base, self.proc.pid
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise SystemExit("server did not start")

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def rss_mb(pid: int | None) -> float | None:
    """Resident memory of `pid` in MB (None when unknown)."""
    if pid is None:
        return None
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return None


def run_load(base: str, films: list[bytes], clients: int, duration: float, pid: int | None) -> dict:
    """Each client posts films back to back until `duration` runs out; returns the report."""
    warm = httpx.post(f"{base}/v1/predict", files={"file": ("w.png", films[0])}, timeout=120)
    warm.raise_for_status()
    latencies: list[float] = []
    errors: list[str] = []
    rss_samples = [rss_mb(pid)]
    lock = threading.Lock()
    stop = time.perf_counter() + duration

    def client(k: int) -> None:
        with httpx.Client(base_url=base, timeout=120) as http:
            i = k
            while time.perf_counter() < stop:
                data = films[i % len(films)]
                i += clients
                t0 = time.perf_counter()
                try:
                    r = http.post("/v1/predict", files={"file": (f"{i}.png", data)})
                    ok = r.status_code == 200 and "probabilities" in r.json()
                    why = f"HTTP {r.status_code}: {r.text[:200]}"
                except httpx.HTTPError as exc:
                    ok, why = False, f"{type(exc).__name__}: {exc}"
                dt = time.perf_counter() - t0
                with lock:
                    (latencies.append(dt) if ok else errors.append(why))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    t_start = time.perf_counter()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(1.0)
        rss_samples.append(rss_mb(pid))
    wall = time.perf_counter() - t_start
    rss_samples.append(rss_mb(pid))
    lat = np.array(latencies) * 1000
    known = [v for v in rss_samples if v is not None]
    return {
        "clients": clients,
        "duration_s": round(wall, 1),
        "requests": len(latencies) + len(errors),
        "errors": len(errors),
        "first_errors": errors[:5],
        "throughput_rps": round(len(latencies) / wall, 2),
        "latency_ms": {
            "p50": round(float(np.percentile(lat, 50)), 1) if len(lat) else None,
            "p95": round(float(np.percentile(lat, 95)), 1) if len(lat) else None,
            "p99": round(float(np.percentile(lat, 99)), 1) if len(lat) else None,
        },
        "server_rss_mb": {
            "start": known[0] if known else None,
            "peak": max(known) if known else None,
            "end": known[-1] if known else None,
        },
        "rss_samples_mb": known,
        "load_avg": os.getloadavg(),
    }


if __name__ == "__main__":
    main()
