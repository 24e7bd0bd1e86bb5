"""Resize a float32 film to a square model input: squash, letterbox pad, or centre crop."""

from __future__ import annotations

from typing import Literal

import numpy as np
from PIL import Image

ResizeMode = Literal["squash", "pad", "crop"]
RESIZE_MODES: tuple[ResizeMode, ...] = ("squash", "pad", "crop")

# Pillow's BILINEAR widens its kernel when shrinking (area-like antialiasing); reducing_gap
# first box-averages big reductions (e.g. 3000 -> 224) by an integer factor, which is faster
# and visually indistinguishable.
_RESAMPLE = Image.Resampling.BILINEAR
_REDUCING_GAP = 2.0


def resize_film(image: np.ndarray, size: int, mode: str = "squash") -> np.ndarray:
    """Return a new float32 (size, size) copy of a 2-D film.

    `mode`: 'squash' resizes to the square, ignoring aspect ratio; 'pad' keeps the aspect
    ratio, fitting the long side and centring on a 0-valued (black) canvas; 'crop' takes the
    centred square of side min(h, w), then resizes it.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"resize mode must be one of {', '.join(RESIZE_MODES)}, not {mode!r}")
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, not {size!r}")
    size = int(size)
    arr = np.ascontiguousarray(image, dtype=np.float32)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"expected a non-empty 2-D (h, w) image, got shape {arr.shape}")
    height, width = arr.shape
    if mode == "pad":
        return _letterbox(arr, size)
    box = None
    if mode == "crop" and height != width:
        side = min(height, width)
        top, left = (height - side) // 2, (width - side) // 2
        box = (left, top, left + side, top + side)
    return _resize(arr, (size, size), box)


def resize_float(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a float (H, W) array (a film, a heat map) to any `hw` = (h, w).

    The one resize of maps and previews (CAM back onto the film, the API's PNGs); model
    inputs go through `resize_film`.
    """
    if tuple(arr.shape) == tuple(hw):
        return np.array(arr, dtype=np.float32)
    img = Image.fromarray(np.ascontiguousarray(arr, dtype=np.float32), mode="F")
    return np.asarray(img.resize((int(hw[1]), int(hw[0])), _RESAMPLE), np.float32)


def _letterbox(arr: np.ndarray, size: int) -> np.ndarray:
    height, width = arr.shape
    scale = size / max(height, width)
    new_h = min(size, max(1, round(height * scale)))
    new_w = min(size, max(1, round(width * scale)))
    canvas = np.zeros((size, size), dtype=np.float32)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    canvas[top : top + new_h, left : left + new_w] = _resize(arr, (new_w, new_h), None)
    return canvas


def _resize(
    arr: np.ndarray, size_wh: tuple[int, int], box: tuple[int, int, int, int] | None
) -> np.ndarray:
    """Pillow 'F' (float32) resize; returns a new writable array."""
    if box is None and arr.shape == (size_wh[1], size_wh[0]):
        return arr.copy()
    resized = Image.fromarray(arr).resize(size_wh, _RESAMPLE, box=box, reducing_gap=_REDUCING_GAP)
    return np.array(resized, dtype=np.float32)
