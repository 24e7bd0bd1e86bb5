"""Length-prefixed frames over pipes, with a deadline: the decode pool's wire format.

A frame is an 8-byte big-endian length and that many bytes. Headers are JSON; pixels
travel as raw float32 bytes. Nothing read from a worker is ever unpickled.
"""

from __future__ import annotations

import json
import os
import select
import struct
import time
from typing import Any

_LENGTH = struct.Struct(">Q")
_CHUNK = 1 << 20


class FrameTimeout(Exception):
    """The peer did not deliver a whole frame before the deadline."""


class FrameEOF(Exception):
    """The peer closed the pipe (it exited or died)."""


def write_frame(fd: int, payload: bytes | bytearray | memoryview) -> None:
    """Write one frame to `fd` (blocking until all of it is written)."""
    _write_all(fd, _LENGTH.pack(len(payload)))
    _write_all(fd, payload)


def write_json(fd: int, header: dict[str, Any]) -> None:
    """Write a JSON header as one frame."""
    write_frame(fd, json.dumps(header).encode())


def read_frame(fd: int, deadline: float | None = None, max_bytes: int | None = None) -> bytearray:
    """Read one frame; FrameEOF at end of pipe, FrameTimeout past `deadline` (monotonic)."""
    (length,) = _LENGTH.unpack(_read_exact(fd, _LENGTH.size, deadline))
    if max_bytes is not None and length > max_bytes:
        raise ValueError(f"frame of {length:,} bytes is over the {max_bytes:,} byte limit")
    return _read_exact(fd, length, deadline)


def read_json(fd: int, deadline: float | None = None) -> dict[str, Any]:
    """Read a JSON header frame (at most 1 MB)."""
    value = json.loads(read_frame(fd, deadline, max_bytes=1 << 20))
    if not isinstance(value, dict):
        raise ValueError("frame header is not a JSON object")
    return value


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    view = memoryview(data).cast("B")
    while view:
        written = os.write(fd, view[:_CHUNK])
        view = view[written:]


def _read_exact(fd: int, n: int, deadline: float | None) -> bytearray:
    buffer = bytearray(n)
    view = memoryview(buffer)
    got = 0
    while got < n:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([fd], [], [], remaining)[0]:
                raise FrameTimeout(f"no answer within the deadline ({got:,}/{n:,} bytes)")
        count = os.readv(fd, [view[got : got + min(n - got, _CHUNK)]])
        if not count:
            raise FrameEOF("pipe closed")
        got += count
    return buffer
