"""Atomic file writes: a temp file beside the target, then a rename (never half a file)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def atomic_write(
    target: str | Path, write: Callable[[BinaryIO], object], mode: int = 0o644
) -> Path:
    """Run `write(handle)` on a temp file beside `target`, chmod it, rename it over `target`.

    Safe when several processes (DataLoader workers) write the same target.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return target
