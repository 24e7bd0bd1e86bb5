"""Decode untrusted films in a pool of worker processes under memory and time limits.

`DecodePool.decode(data, name)` gives what `read_image_bytes` gives, but the decoders
run in child processes (`cxrkit.io.decode_worker`) with RLIMIT_AS (memory), a per-decode
timeout and a CPU backstop. A worker that crashes (segfault, panic that kills it), hangs
or runs out of memory is replaced and the caller gets an ImageReadError naming the
reason; the pool keeps serving. The server decodes uploads here; batching decoders (the
throughput work) can sit behind the same pool.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.errors import (
    CorruptImageError,
    DecoderCrashError,
    DecodeTimeoutError,
    DecompressionBombError,
    DicomError,
    EmptyFileError,
    FilmTooSmallError,
    ImageReadError,
    UnsupportedFormatError,
)
from cxrkit.io.contract import check_film
from cxrkit.io.frames import FrameEOF, FrameTimeout, read_frame, read_json, write_frame, write_json
from cxrkit.io.meta import DEFAULT_MAX_PIXELS, ImageMeta

log = logging.getLogger("cxrkit.io.pool")

_ERRORS: dict[str, type[ImageReadError]] = {
    cls.__name__: cls
    for cls in (
        ImageReadError,
        EmptyFileError,
        UnsupportedFormatError,
        CorruptImageError,
        DecompressionBombError,
        DicomError,
        FilmTooSmallError,
    )
}
_START_TIMEOUT_S = 60.0
_CLOSED = object()  # queued when the pool closes: wakes and refuses waiting decodes
_THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


class ProcessWorker:
    """One child process speaking `cxrkit.io.frames` on its stdin/stdout.

    `argv` starts it; the child first sends a JSON header (its "ready" line). `call`
    sends frames and reads an answer before a deadline; on timeout or death the caller
    should `kill()` it and start another.
    """

    def __init__(self, argv: Sequence[str], env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            bufsize=0,
            env=env,
            close_fds=True,
        )
        self.ready = False

    def wait_ready(self, timeout: float = _START_TIMEOUT_S) -> None:
        """Block until the child's ready header (FrameEOF / FrameTimeout otherwise)."""
        if not self.ready:
            assert self.proc.stdout is not None
            read_json(self.proc.stdout.fileno(), time.monotonic() + timeout)
            self.ready = True

    def send(self, *frames: bytes | bytearray | memoryview) -> None:
        """Write frames to the child (BrokenPipeError if it died)."""
        assert self.proc.stdin is not None
        for frame in frames:
            write_frame(self.proc.stdin.fileno(), frame)

    def send_json(self, header: dict[str, Any]) -> None:
        """Write a JSON header frame to the child."""
        assert self.proc.stdin is not None
        write_json(self.proc.stdin.fileno(), header)

    def read_json(self, deadline: float) -> dict[str, Any]:
        """Read a JSON header frame before `deadline` (time.monotonic())."""
        assert self.proc.stdout is not None
        return read_json(self.proc.stdout.fileno(), deadline)

    def read_frame(self, deadline: float, max_bytes: int | None = None) -> bytearray:
        """Read a raw frame before `deadline`."""
        assert self.proc.stdout is not None
        return read_frame(self.proc.stdout.fileno(), deadline, max_bytes)

    def kill(self) -> int | None:
        """Kill the child (if alive) and reap it; returns its exit status."""
        if self.proc.poll() is None:
            self.proc.kill()
        try:
            code = self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:  # pragma: no cover - unkillable (D state)
            code = None
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        return code

    def close(self) -> None:
        """Ask the child to exit (close its stdin), then make sure it is gone."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=2)
        self.kill()


def worker_env() -> dict[str, str]:
    """The environment of a worker: one thread per native library, cxrkit importable."""
    env = dict(os.environ)
    for key in _THREAD_ENV:
        env[key] = "1"
    src = str(Path(__file__).resolve().parents[2])  # the folder holding the cxrkit package
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env["RUST_BACKTRACE"] = "0"
    return env


def exit_reason(code: int | None) -> str:
    """'killed by SIGSEGV' / 'exited with status 3' for a dead child's return code."""
    if code is None:
        return "did not exit"
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with status {code}"


@dataclass
class PoolStats:
    """Counters of one pool, for logs, /healthz-like status and the benchmarks."""

    decodes: int = 0
    timeouts: int = 0
    crashes: int = 0
    out_of_memory: int = 0
    restarts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        """Add to counters, thread-safely."""
        with self.lock:
            for key, value in counts.items():
                setattr(self, key, getattr(self, key) + value)

    def as_dict(self) -> dict[str, int]:
        """The counters as a plain dict."""
        with self.lock:
            return {
                "decodes": self.decodes,
                "timeouts": self.timeouts,
                "crashes": self.crashes,
                "out_of_memory": self.out_of_memory,
                "restarts": self.restarts,
            }


class DecodePool:
    """`workers` decode processes; `decode` is thread-safe and blocks for a free worker.

    `memory_mb` caps each worker's address space above what it maps at start (RLIMIT_AS),
    `timeout_s` bounds one decode (the worker is killed and replaced past it), and a CPU
    limit of 2 x timeout_s + 5 s backs that up should the parent be gone. Workers start
    lazily on first use; `close()` (or leaving a `with` block) stops them. `worker_argv`
    replaces the worker command (it gets MEMORY_BYTES CPU_SECONDS appended), e.g. to
    inject faults in tests.
    """

    def __init__(
        self,
        workers: int = 2,
        *,
        memory_mb: int = 2048,
        timeout_s: float = 30.0,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        worker_argv: Sequence[str] | None = None,
    ) -> None:
        if workers < 1:
            raise ValueError("a DecodePool needs at least one worker")
        self.size, self.memory_mb, self.timeout_s = workers, memory_mb, timeout_s
        self.max_pixels = max_pixels
        self.worker_argv = list(worker_argv or [sys.executable, "-m", "cxrkit.io.decode_worker"])
        self.stats = PoolStats()
        # Idle slots: a worker, None (an empty slot: spawn on use) or _CLOSED.
        self._idle: queue.Queue[Any] = queue.Queue()
        self._started = False
        self._closed = False
        self._lock = threading.Lock()
        self._all: set[ProcessWorker] = set()
        weakref.finalize(self, _close_workers, self._all)

    def __enter__(self) -> DecodePool:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def start(self) -> None:
        """Start the worker processes now (otherwise on the first decode)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("the DecodePool is closed")
            if self._started:
                return
            for _ in range(self.size):
                self._idle.put(self._try_spawn())
            self._started = True

    def _spawn(self) -> ProcessWorker:
        cpu_s = 2 * self.timeout_s + 5
        worker = ProcessWorker(
            [*self.worker_argv, str(self.memory_mb * 1024 * 1024), f"{cpu_s:g}"], env=worker_env()
        )
        self._all.add(worker)
        return worker

    def _try_spawn(self) -> ProcessWorker | None:
        """A new worker, or None (an empty slot, retried on next use) if it cannot start."""
        try:
            return self._spawn()
        except OSError as exc:
            log.error("cannot start a decode worker: %s", exc)
            return None

    def _replace(self, worker: ProcessWorker) -> tuple[ProcessWorker | None, int | None]:
        code = worker.kill()
        self._all.discard(worker)
        self.stats.add(restarts=1)
        return self._try_spawn(), code

    def decode(
        self, data: bytes, name: str = "<upload>", *, max_pixels: int | None = None
    ) -> tuple[np.ndarray, ImageMeta]:
        """Decode `data` in a worker: (film, meta) exactly as `read_image_bytes`, or raise.

        Errors: the reader's ImageReadError subclasses; DecodeTimeoutError past
        `timeout_s`; DecoderCrashError when the worker dies; DecompressionBombError when it
        runs out of memory. The film passes the reader's contract again in this process.
        """
        if not data:
            raise EmptyFileError(name, "empty file (0 bytes)")
        limit = self.max_pixels if max_pixels is None else max_pixels
        self.start()
        worker = self._idle.get()
        if worker is _CLOSED:  # closed while waiting
            self._idle.put(_CLOSED)
            raise RuntimeError("the DecodePool is closed")
        slot = [worker]  # _run swaps in a new worker when it has to kill this one
        try:
            return self._run(slot, bytes(data), name, limit)
        finally:
            self.stats.add(decodes=1)
            if self._closed:
                if slot[0] is not None:
                    slot[0].close()
            else:
                self._idle.put(slot[0])

    def _run(
        self, slot: list[ProcessWorker | None], data: bytes, name: str, max_pixels: int
    ) -> tuple[np.ndarray, ImageMeta]:
        if slot[0] is None:
            try:
                slot[0] = self._spawn()
            except OSError as exc:
                raise DecoderCrashError(
                    name, f"no decoder process could be started ({exc})"
                ) from exc
        worker = slot[0]
        try:
            worker.wait_ready()
        except (FrameEOF, FrameTimeout, ValueError) as exc:
            slot[0], code = self._replace(worker)
            raise DecoderCrashError(
                name, f"the decoder process did not start ({exit_reason(code)})"
            ) from exc
        deadline = time.monotonic() + self.timeout_s
        try:
            worker.send_json({"name": name, "max_pixels": max_pixels})
            worker.send(data)
            header = worker.read_json(deadline)
            if not header.get("ok"):
                self._raise_answer(header, name)
            height, width = (int(v) for v in header["shape"])
            raw = worker.read_frame(deadline, max_bytes=4 * height * width)
        except FrameTimeout as exc:
            slot[0], _ = self._replace(worker)
            self.stats.add(timeouts=1)
            log.warning("decode of %s timed out after %g s; worker replaced", name, self.timeout_s)
            raise DecodeTimeoutError(
                name, f"decoding took longer than {self.timeout_s:g} s; the file was given up"
            ) from exc
        except (FrameEOF, OSError, ValueError, KeyError) as exc:  # died, or spoke nonsense
            slot[0], code = self._replace(worker)
            self.stats.add(crashes=1)
            log.warning("decoder crashed on %s (%s); worker replaced", name, exit_reason(code))
            raise DecoderCrashError(
                name, f"the decoder crashed on this file ({exit_reason(code)})"
            ) from exc
        image = np.frombuffer(raw, dtype="<f4").reshape(height, width)
        return check_film(image, name, max_pixels), _meta(header["meta"])

    def _raise_answer(self, header: dict[str, Any], name: str) -> None:
        kind, reason = str(header.get("type")), str(header.get("reason", "unreadable"))
        if kind == "MemoryError":
            self.stats.add(out_of_memory=1)
            raise DecompressionBombError(
                name, f"decoding needs more than the {self.memory_mb:,} MB memory limit"
            )
        raise _ERRORS.get(kind, CorruptImageError)(name, reason)

    def status(self) -> dict[str, Any]:
        """Size, limits and counters, e.g. for a health endpoint."""
        return {
            "workers": self.size,
            "memory_mb": self.memory_mb,
            "timeout_s": self.timeout_s,
            **self.stats.as_dict(),
        }

    def close(self) -> None:
        """Stop every worker; decodes in flight finish, later ones raise RuntimeError."""
        with self._lock:
            self._closed = True
        self._idle.put(_CLOSED)
        _close_workers(self._all)


def _close_workers(workers: set[ProcessWorker]) -> None:
    """Close every worker of a set (also run when a pool is garbage-collected)."""
    while workers:
        workers.pop().close()


def _meta(fields: dict[str, Any]) -> ImageMeta:
    """ImageMeta from a worker's JSON (lists back to tuples)."""
    spacing = fields.get("pixel_spacing")
    return ImageMeta(
        path=str(fields["path"]),
        format=fields["format"],
        bit_depth=int(fields["bit_depth"]),
        original_size=(int(fields["original_size"][0]), int(fields["original_size"][1])),
        photometric=str(fields["photometric"]),
        pixel_spacing=None if spacing is None else (float(spacing[0]), float(spacing[1])),
        inverted=bool(fields.get("inverted", False)),
        modality=fields.get("modality"),
    )
