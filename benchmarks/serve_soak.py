"""Soak test of `cxr serve` on loopback: good films, bad files and oversize uploads for minutes.

Starts `cxr serve MODEL` on a free 127.0.0.1 port (never another address) and runs
--clients threads for --duration seconds. Each request is, at random (seeded): a good film
(shared samples: NIH PNGs, PadChest/COVID JPEGs, SIIM DICOMs; plus kermany films), a bad
file (tests/bad_files.py's catalogue and tests/fuzzing.py mutations of PNG/JPEG/DICOM) or
an upload over the server's size limit. Per window (default a minute) it records good
latency p50/p95, status counts (429 apart), the server's and its decode workers' RSS and
/healthz. At the end the server gets SIGTERM and must drain and exit 0.

    .venv/bin/python benchmarks/serve_soak.py                       # 8 clients, 600 s
    .venv/bin/python benchmarks/serve_soak.py --duration 20 --clients 4 --window 5

Verdict (exit status 1 otherwise): no 5xx, good films only 200/429, bad and oversize only
4xx (fuzzed files may also be 200: some mutations leave a valid film), /healthz up at the
end, clean exit. The report goes to benchmarks/results/serve_soak.json by default.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # bad files and the fuzz engine live with the tests

from bad_files import BAD_FILES, png_bomb  # noqa: E402
from fuzzing import make_case, quiet_pydicom, sample_seeds, synthetic_seeds  # noqa: E402

BIN = Path(sys.executable).parent
SHARED = Path(os.environ.get("CXR_SHARED", REPO.parent / "shared"))
DEFAULT_MODEL = REPO / "runs" / "base" / "model.safetensors"
DEFAULT_OUT = REPO / "benchmarks" / "results" / "serve_soak.json"
HOST = "127.0.0.1"  # the only address this benchmark ever talks to
KINDS = ("good", "bad", "fuzz", "oversize")


@dataclass(frozen=True)
class Upload:
    """One request body: its kind, a file name and the bytes."""

    kind: str
    name: str
    data: bytes


@dataclass
class Record:
    """What happened to one request."""

    t: float  # seconds since the load started
    kind: str
    status: int  # HTTP status, or 0 for a transport error (reset, refused, timeout)
    latency_s: float


@dataclass
class Sample:
    """One look at the server: RSS of the server and of its decode workers, health."""

    t: float
    server_rss_mb: float | None
    workers_rss_mb: float
    healthy: bool


@dataclass
class Log:
    """Records and samples of the run, appended from several threads."""

    records: list[Record] = field(default_factory=list)
    samples: list[Sample] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, record: Record) -> None:
        """Append one request's record."""
        with self.lock:
            self.records.append(record)


def good_uploads(films: int) -> list[Upload]:
    """The shared sample files (PNG, JPEG, DICOM) and the first `films` kermany films."""
    samples = SHARED / "data" / "samples"
    paths = [p for p in sorted(samples.iterdir()) if p.suffix.lower() in (".png", ".jpg", ".dcm")]
    kermany = sorted((SHARED / "data" / "kermany_pneumonia" / "images").glob("*.png"))[:films]
    out = [Upload("good", p.name, p.read_bytes()) for p in [*paths, *kermany]]
    if not out:
        raise SystemExit(f"no films under {SHARED / 'data'}")
    return out


def bad_uploads(tmp: Path, fuzz_cases: int, seed: int) -> tuple[list[Upload], list[Upload]]:
    """The bad-file catalogue (must be refused) and seeded fuzz mutations (refused or valid)."""
    quiet_pydicom()
    bad = []
    for key, case in BAD_FILES.items():
        path = tmp / f"{key}-{case.name}"
        case.write(path)
        bad.append(Upload("bad", case.name, path.read_bytes()))
    seeds = synthetic_seeds() + sample_seeds(SHARED / "data" / "samples")
    fuzz = [make_case(seeds, i, seed) for i in range(fuzz_cases)]
    return bad, [Upload("fuzz", c.name, c.data) for c in fuzz]


def oversize_upload(limit_mb: float) -> Upload:
    """A PNG-looking upload 1 MB over the server's limit."""
    size = int((limit_mb + 1) * 1024 * 1024)
    head = png_bomb(64, 64)
    return Upload("oversize", "huge.png", head + bytes(size - len(head)))


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float | None:
    """Resident memory of `pid` in MB from /proc (None when gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid: int) -> list[int]:
    """Child pids of `pid` (the decode workers of a server)."""
    kids: list[int] = []
    try:
        for task in Path(f"/proc/{pid}/task").iterdir():
            kids += [int(k) for k in (task / "children").read_text().split()]
    except OSError:
        pass
    return kids


def start_server(model: Path, port: int, args: argparse.Namespace) -> subprocess.Popen:
    """`cxr serve MODEL` on 127.0.0.1:port (no token), waiting until /healthz answers."""
    env = {k: v for k, v in os.environ.items() if k != "CXR_API_TOKEN"}
    cmd = [str(BIN / "cxr"), "serve", str(model), "--host", HOST, "--port", str(port)]
    cmd += ["--runtime", args.runtime, "--max-upload-mb", f"{args.max_upload_mb:g}"]
    cmd += ["--rate-limit", args.rate_limit]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://{HOST}:{port}"
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise SystemExit(f"server exited with {proc.returncode}: {err[-1000:]}")
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    proc.kill()
    raise SystemExit("server did not start within 300 s")


def stop_server(proc: subprocess.Popen, timeout: float = 120) -> tuple[int | None, float, str]:
    """SIGTERM, wait for the drain; (exit code or None if it had to be killed, seconds, log)."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        code = None
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    return code, time.monotonic() - t0, err


def client(
    k: int,
    base: str,
    pools: dict[str, list[Upload]],
    weights: list[float],
    stop: float,
    t0: float,
    log: Log,
    seed: int,
) -> None:
    """Post uploads of random kinds back to back until `stop`; honour Retry-After on 429."""
    rng = random.Random(seed * 1000 + k)
    kinds = list(pools)
    with httpx.Client(base_url=base, timeout=120) as http:
        while time.monotonic() < stop:
            kind = rng.choices(kinds, weights)[0]
            up = rng.choice(pools[kind])
            params = {"cam": "true"} if kind == "good" and rng.random() < 0.1 else None
            start = time.monotonic()
            retry = 0.0
            try:
                r = http.post("/v1/predict", params=params, files={"file": (up.name, up.data)})
                status = r.status_code
                if status == 200:
                    body = r.json()
                    probs = body.get("probabilities") or {}
                    finite = all(isinstance(v, float) and 0 <= v <= 1 for v in probs.values())
                    if body.get("label") is None or not probs or not finite:
                        status = 1  # a 200 without a finite answer: counted as a failure
                elif status == 429:
                    retry = float(r.headers.get("retry-after", "1"))
            except httpx.HTTPError:
                status = 0
            log.add(Record(start - t0, kind, status, time.monotonic() - start))
            if retry:
                time.sleep(max(0.0, min(retry, stop - time.monotonic())))


def monitor(base: str, pid: int, stop: float, t0: float, log: Log, every: float) -> None:
    """Sample RSS and /healthz every `every` seconds until `stop`."""
    while True:
        kids = children(pid)
        healthy = False
        with contextlib.suppress(httpx.HTTPError):
            healthy = httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        sample = Sample(
            time.monotonic() - t0,
            rss_mb(pid),
            sum(v for v in (rss_mb(c) for c in kids) if v is not None),
            healthy,
        )
        with log.lock:
            log.samples.append(sample)
        left = stop - time.monotonic()
        if left <= 0:
            return
        time.sleep(min(every, left))


def _pct(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)) * 1000, 1) if values else None


def summarize_window(records: list[Record], samples: list[Sample], w: int, span: float) -> dict:
    """One window's figures: counts, good latency p50/p95 (ms), RSS and health."""
    good = [r.latency_s for r in records if r.kind == "good" and r.status == 200]
    codes = Counter(str(r.status) for r in records)
    server = [s.server_rss_mb for s in samples if s.server_rss_mb is not None]
    return {
        "window": w,
        "start_s": round(w * span, 1),
        "requests": len(records),
        "status": dict(sorted(codes.items())),
        "rate_limited_429": codes.get("429", 0),
        "good_200": len(good),
        "good_p50_ms": _pct(good, 50),
        "good_p95_ms": _pct(good, 95),
        "server_rss_mb": round(float(np.mean(server)), 1) if server else None,
        "server_rss_max_mb": round(max(server), 1) if server else None,
        "workers_rss_mb": round(float(np.mean([s.workers_rss_mb for s in samples])), 1)
        if samples
        else None,
        "healthy": all(s.healthy for s in samples) if samples else None,
    }


def expected(record: Record) -> bool:
    """Whether a status is an acceptable answer for the kind of upload."""
    s = record.status
    if s >= 500 or s == 1:
        return False
    if s == 429:
        return True
    if record.kind == "good":
        return s == 200
    if record.kind == "bad":
        return 400 <= s < 500
    if record.kind == "fuzz":
        return s == 200 or 400 <= s < 500
    return s == 413 or s == 0  # oversize: refused, or the refusal reset the upload mid-send


def report(log: Log, args: argparse.Namespace, wall: float, meta: dict) -> dict:
    """The full report: configuration, totals, per-window figures and the verdict."""
    span = args.window
    n_windows = max(1, int(np.ceil(args.duration / span - 1e-9)))

    def index(t: float) -> int:  # the tail after the last boundary joins the last window
        return min(int(t // span), n_windows - 1)

    windows = [
        summarize_window(
            [r for r in log.records if index(r.t) == w],
            [s for s in log.samples if index(s.t) == w],
            w,
            span,
        )
        for w in range(n_windows)
    ]
    codes = Counter(str(r.status) for r in log.records)
    by_kind = {k: dict(Counter(str(r.status) for r in log.records if r.kind == k)) for k in KINDS}
    five_xx = sum(1 for r in log.records if r.status >= 500)
    unexpected = [r for r in log.records if not expected(r)]
    transport = {k: sum(1 for r in log.records if r.kind == k and r.status == 0) for k in KINDS}
    full = [w for w in windows if w["good_p95_ms"] is not None]
    first, last = (full[0], full[-1]) if full else ({}, {})
    summary = {
        "requests": len(log.records),
        "five_xx": five_xx,
        "rate_limited_429": codes.get("429", 0),
        "unexpected": len(unexpected),
        "first_unexpected": [vars(r) for r in unexpected[:10]],
        "transport_errors": transport,
        "good_p95_first_last_ms": [first.get("good_p95_ms"), last.get("good_p95_ms")],
        "server_rss_first_last_mb": [first.get("server_rss_mb"), last.get("server_rss_mb")],
        "healthy_at_end": meta["healthy_at_end"],
        "exit_code": meta["exit_code"],
        "drain_s": meta["drain_s"],
    }
    summary["ok"] = bool(
        five_xx == 0
        and not unexpected
        and transport["good"] == 0
        and transport["bad"] == 0
        and meta["healthy_at_end"]
        and meta["exit_code"] == 0
    )
    return {
        "what": "benchmarks/serve_soak.py: cxr serve on 127.0.0.1 under mixed good/bad/oversize",
        "config": {
            "model": meta["model"],
            "runtime": args.runtime,
            "clients": args.clients,
            "duration_s": args.duration,
            "window_s": span,
            "mix": dict(zip(KINDS, meta["weights"], strict=True)),
            "uploads": meta["uploads"],
            "max_upload_mb": args.max_upload_mb,
            "rate_limit": args.rate_limit,
            "client_nice": args.client_nice,
            "seed": args.seed,
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_avg_start": meta["load_start"],
            "load_avg_end": list(os.getloadavg()),
            "note": args.note,
        },
        "wall_s": round(wall, 1),
        "summary": summary,
        "totals": {"status": dict(sorted(codes.items())), "by_kind": by_kind},
        "windows": windows,
    }


def main(argv: list[str] | None = None) -> dict:
    """Parse arguments, run the soak, print the summary and write the report."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--runtime", default="torch", choices=["torch", "onnx"])
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--duration", type=float, default=600.0, help="seconds of load")
    ap.add_argument("--window", type=float, default=60.0, help="seconds per reported window")
    ap.add_argument("--films", type=int, default=40, help="kermany films beside the samples")
    ap.add_argument("--fuzz-cases", type=int, default=200)
    ap.add_argument("--mix", default="60,15,15,10", help="weights of good,bad,fuzz,oversize")
    ap.add_argument("--max-upload-mb", type=float, default=4.0, help="the server's limit")
    ap.add_argument("--rate-limit", default="50/s", help="the server's --rate-limit")
    ap.add_argument("--client-nice", type=int, default=0, help="nice the client threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--note", default="", help="free text stored in the report (the machine)")
    args = ap.parse_args(argv)
    if not args.model.is_file():
        raise SystemExit(f"no model file at {args.model} (pass --model)")
    if args.duration <= 0 or args.duration > 24 * 3600 or args.clients < 1:
        raise SystemExit("--duration must be in (0, 86400] s and --clients >= 1")
    weights = [float(w) for w in args.mix.split(",")]
    if len(weights) != len(KINDS) or min(weights) < 0 or sum(weights) <= 0:
        raise SystemExit("--mix: four non-negative weights (good,bad,fuzz,oversize)")
    with tempfile.TemporaryDirectory(prefix="cxr-soak-") as tmp:
        bad, fuzz = bad_uploads(Path(tmp), args.fuzz_cases, args.seed)
    pools = {
        "good": good_uploads(args.films),
        "bad": bad,
        "fuzz": fuzz,
        "oversize": [oversize_upload(args.max_upload_mb)],
    }
    port = free_port()
    base = f"http://{HOST}:{port}"
    proc = start_server(args.model, port, args)  # started before nice: only clients are niced
    log = Log()
    try:
        if args.client_nice:
            os.nice(args.client_nice)
        warm = httpx.post(f"{base}/v1/predict", files={"file": ("w.png", pools["good"][0].data)})
        warm.raise_for_status()
        load_start = list(os.getloadavg())
        t0 = time.monotonic()
        stop = t0 + args.duration
        threads = [
            threading.Thread(
                target=client,
                args=(k, base, pools, weights, stop, t0, log, args.seed),
                daemon=True,
            )
            for k in range(args.clients)
        ]
        threads.append(
            threading.Thread(
                target=monitor,
                args=(base, proc.pid, stop, t0, log, min(5.0, args.window / 2)),
                daemon=True,
            )
        )
        for t in threads:
            t.start()
        for t in threads:  # bounded: each request times out after 120 s
            t.join(timeout=max(0.0, stop - time.monotonic()) + 150)
        wall = time.monotonic() - t0
        try:
            healthy = httpx.get(f"{base}/healthz", timeout=10).status_code == 200
        except httpx.HTTPError:
            healthy = False
    finally:
        code, drain_s, _err = stop_server(proc)
    meta = {
        "model": str(args.model),
        "weights": weights,
        "uploads": {k: len(v) for k, v in pools.items()},
        "load_start": load_start,
        "healthy_at_end": healthy,
        "exit_code": code,
        "drain_s": round(drain_s, 2),
    }
    out = report(log, args, wall, meta)
    print(json.dumps(out["summary"], indent=2))
    for w in out["windows"]:
        print(
            f"  window {w['window']:>3}: {w['requests']:>5} req, good p50/p95 "
            f"{w['good_p50_ms']}/{w['good_p95_ms']} ms, 429 {w['rate_limited_429']}, "
            f"server RSS {w['server_rss_mb']} MB, workers {w['workers_rss_mb']} MB, "
            f"status {w['status']}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    return out


if __name__ == "__main__":
    sys.exit(0 if main()["summary"]["ok"] else 1)
