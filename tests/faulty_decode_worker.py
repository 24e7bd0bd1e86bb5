"""A decode worker with faults on demand, for the DecodePool tests (run as a script).

Files starting with b"HANG" sleep forever, b"SEGV" kill the worker with SIGSEGV, b"BOMB"
allocate far beyond the memory limit, b"EXIT" exit; anything else is decoded normally.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from typing import Any


def faulty_read(data: bytes, name: str, *, max_pixels: int) -> tuple[Any, Any]:
    """read_image_bytes with magic prefixes that misbehave."""
    if data.startswith(b"HANG"):
        while True:
            time.sleep(1)
    if data.startswith(b"SEGV"):
        os.kill(os.getpid(), signal.SIGSEGV)
    if data.startswith(b"BOMB"):
        hog = bytearray(64 * 1024**3)
        return hog, None  # pragma: no cover - the allocation fails under RLIMIT_AS
    if data.startswith(b"EXIT"):
        os._exit(3)
    from cxrkit.io.read import read_image_bytes

    return read_image_bytes(data, name, max_pixels=max_pixels)


if __name__ == "__main__":
    from cxrkit.io.decode_worker import main

    sys.exit(main(sys.argv[1:], read=faulty_read))
