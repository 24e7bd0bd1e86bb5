"""Atomic training checkpoints (`last.pt`, `best.pt`) that resume after a kill."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from cxrkit.errors import CxrkitError
from cxrkit.io.atomic import atomic_write


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to a temp file beside `path`, then rename: a kill never leaves half a file."""
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True` (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise CxrkitError(f"{path}: no checkpoint to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CxrkitError(f"{path}: unreadable checkpoint ({exc})") from exc
