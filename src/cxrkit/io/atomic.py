"""Atomic file writes: a temp file beside the target, then a rename (never half a file).

A process killed mid-write leaves at most an orphan `.NAME.*.tmp` beside the target, which
no reader takes for the target; `remove_temps` clears those where one process owns a folder.
A full disk raises `DiskFullError` after removing the temp file: the target is unchanged.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from cxrkit.errors import DiskFullError

_DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}


def atomic_write(
    target: str | Path, write: Callable[[BinaryIO], object], mode: int = 0o644
) -> Path:
    """Run `write(handle)` on a temp file beside `target`, chmod it, rename it over `target`.

    Safe when several processes (DataLoader workers) write the same target. Raises
    `DiskFullError` (an `OSError` too) when the disk fills; `target` is then unchanged.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    except OSError as exc:
        full = _disk_full(target, exc)
        if full is None:
            raise
        raise full from exc
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
        os.chmod(tmp, mode)  # mkstemp creates 0600
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        full = _disk_full(target, exc)
        if full is None:
            raise
        raise full from exc
    return target


def atomic_write_text(target: str | Path, text: str) -> Path:
    """Write `text` (UTF-8) to `target` atomically (see `atomic_write`)."""
    data = text.encode("utf-8")
    return atomic_write(target, lambda fh: fh.write(data))


def temp_files(target: str | Path) -> list[Path]:
    """Temp files `atomic_write` left beside `target` (a kill mid-write leaves one)."""
    target = Path(target)
    return sorted(target.parent.glob(f".{glob_escape(target.name)}.*.tmp"))


def remove_temps(target: str | Path) -> int:
    """Delete the orphan temp files of `target`; only for folders one process writes. Count."""
    removed = 0
    for tmp in temp_files(target):
        with contextlib.suppress(OSError):
            tmp.unlink()
            removed += 1
    return removed


def glob_escape(name: str) -> str:
    """`name` with glob metacharacters bracketed, for a literal match in `Path.glob`."""
    return "".join(f"[{ch}]" if ch in "*?[" else ch for ch in name)


def _disk_full(target: Path, exc: BaseException) -> DiskFullError | None:
    """`DiskFullError` when `exc` or what caused it is ENOSPC / EDQUOT, else None."""
    code = _disk_full_errno(exc) if isinstance(exc, Exception) else None
    if code is None:
        return None
    try:
        free: int | None = shutil.disk_usage(target.parent).free
    except OSError:
        free = None
    return DiskFullError(target, code, free)


def _disk_full_errno(exc: BaseException | None) -> int | None:
    """The ENOSPC / EDQUOT errno in `exc`'s chain (torch.save wraps it in a RuntimeError)."""
    for _ in range(8):
        if exc is None or isinstance(exc, DiskFullError):
            return None
        if isinstance(exc, OSError) and exc.errno in _DISK_FULL:
            return exc.errno
        exc = exc.__cause__ or exc.__context__
    return None
