"""Silence native decoders that print to file descriptor 2 (e.g. Rust panic messages)."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

_lock = threading.Lock()
_depth = 0
_saved_fd: int | None = None


@contextmanager
def native_stderr_silenced() -> Iterator[None]:
    """Point fd 2 at /dev/null inside the block; nested and threaded uses are refcounted.

    pylibjpeg-rle prints a panic message and backtrace to fd 2 before raising
    PanicException; the reader turns that exception into a one-line error, so the text
    would only break the CLI's one-line contract. Python-level warnings are unaffected.
    """
    global _depth, _saved_fd
    with _lock:
        if _depth == 0:
            try:
                sys.stderr.flush()
                saved = os.dup(2)
                devnull = os.open(os.devnull, os.O_WRONLY)
            except (OSError, ValueError, AttributeError):
                saved = None
            else:
                os.dup2(devnull, 2)
                os.close(devnull)
            _saved_fd = saved
        _depth += 1
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0 and _saved_fd is not None:
                os.dup2(_saved_fd, 2)
                os.close(_saved_fd)
                _saved_fd = None
