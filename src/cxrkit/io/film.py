"""`as_film`: any in-memory image array to a film as `read_image` gives one."""

from __future__ import annotations

import numpy as np

from cxrkit.io.contract import check_film
from cxrkit.io.meta import DEFAULT_MAX_PIXELS


def as_film(
    image: np.ndarray, name: str = "array", *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> np.ndarray:
    """Float32 (H, W) in [0, 1] from a float film, uint8/uint16 (scaled by the type's
    maximum), bool, or (H, W, 3|4) RGB(A) (channels averaged).

    The result passes the film contract (`io/contract.py`): a NaN, an infinity, values
    outside [0, 1] or a film under 16 px a side raise an `ImageReadError` naming `name`.
    """
    arr = np.asarray(image)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    elif arr.dtype.kind in "ui":
        arr = arr.astype(np.float32) / np.float32(np.iinfo(arr.dtype).max)
    elif arr.dtype.kind == "f":
        arr = arr.astype(np.float32, copy=False)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].mean(axis=-1, dtype=np.float32)
    elif arr.ndim == 3 and arr.shape[0] == 1:
        arr = arr[0]
    return check_film(np.ascontiguousarray(arr), name, max_pixels)
