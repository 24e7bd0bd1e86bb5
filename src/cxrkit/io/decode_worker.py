"""Child process of `DecodePool`: decode films from stdin under rlimits, answer on stdout.

Run as `python -m cxrkit.io.decode_worker MEMORY_BYTES CPU_SECONDS`. Protocol (frames of
`cxrkit.io.frames`): the worker says `{"ready": true}`; then per request it reads a JSON
header `{"name", "max_pixels"}` and the file's bytes, and answers `{"ok": true, "shape",
"meta"}` plus the film as raw float32 bytes, or `{"ok": false, "type", "reason"}`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from typing import Any

#: What a worker runs on each request: read_image_bytes(data, name, max_pixels=...).
Reader = Callable[..., tuple[Any, Any]]


def _address_space_bytes() -> int | None:
    """Current virtual memory size of this process (Linux /proc), None elsewhere."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmSize:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def apply_limits(memory_bytes: int) -> None:
    """RLIMIT_AS = what is mapped now + `memory_bytes`; no core files; no file writes."""
    import resource

    base = _address_space_bytes()
    if base is not None and memory_bytes > 0:
        limit = base + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, 0))  # a decode never writes a file


def _cpu_budget(seconds: float) -> None:
    """Soft CPU limit = CPU used so far + `seconds`: a stray decode dies even unwatched."""
    import resource

    if seconds <= 0:
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = int(usage.ru_utime + usage.ru_stime + seconds) + 1
    _, hard = resource.getrlimit(resource.RLIMIT_CPU)
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_CPU, (soft, hard))


def _warm_up() -> None:
    """Import the reader and every pixel decoder now, not inside a timed request."""
    import pydicom.pixels  # noqa: F401

    import cxrkit.io.dicom  # noqa: F401
    import cxrkit.io.read  # noqa: F401

    for plugin in ("rle", "libjpeg", "openjpeg"):
        with contextlib.suppress(ImportError):
            __import__(plugin)


def _answer(out: int, read: Reader, data: bytes, name: str, max_pixels: int) -> None:
    from cxrkit.errors import ImageReadError
    from cxrkit.io.frames import write_frame, write_json
    from cxrkit.io.reasons import describe_exception, is_fatal

    try:
        image, meta = read(data, name, max_pixels=max_pixels)
    except ImageReadError as exc:
        write_json(out, {"ok": False, "type": type(exc).__name__, "reason": exc.reason})
        return
    except MemoryError:
        write_json(out, {"ok": False, "type": "MemoryError", "reason": "out of memory"})
        return
    except BaseException as exc:
        if is_fatal(exc):
            raise
        reason = describe_exception(exc)
        write_json(out, {"ok": False, "type": "CorruptImageError", "reason": reason})
        return
    header = {"ok": True, "shape": list(image.shape), "meta": dataclasses.asdict(meta)}
    write_json(out, header)
    import numpy as np

    write_frame(out, memoryview(np.ascontiguousarray(image, dtype="<f4")).cast("B"))


def read_requests(fd: int = 0) -> Iterator[tuple[dict[str, Any], bytes]]:
    """Each request's JSON header and file bytes read from `fd`, until it closes."""
    from cxrkit.io.frames import FrameEOF, read_frame, read_json

    while True:
        try:
            header = read_json(fd)
            data = bytes(read_frame(fd))
        except FrameEOF:
            return
        yield header, data


def main(argv: list[str], read: Reader | None = None) -> int:
    """Serve requests until stdin closes; `read` defaults to `read_image_bytes`."""
    memory_bytes, cpu_seconds = int(argv[0]), float(argv[1])
    out = os.dup(1)  # the protocol's private copy of stdout
    os.dup2(2, 1)  # stray prints go where stderr goes, never into the protocol
    warnings.simplefilter("ignore")
    _warm_up()
    if read is None:
        from cxrkit.io.read import read_image_bytes as read
    from cxrkit.io.frames import write_json

    apply_limits(memory_bytes)
    write_json(out, {"ready": True, "pid": os.getpid()})
    for header, data in read_requests():
        _cpu_budget(cpu_seconds)
        _answer(out, read, data, str(header.get("name", "<upload>")), int(header["max_pixels"]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
