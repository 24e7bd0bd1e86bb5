"""Small PNGs for the API: a film preview and a CAM heat map, base64-encoded."""

from __future__ import annotations

import base64
import io

import numpy as np
from PIL import Image

from cxrkit.io.resize import resize_float

__all__ = ["film_preview", "fit_size", "heatmap_rgba", "png_base64", "resize_float"]


def png_base64(pixels: np.ndarray) -> str:
    """Base64 text of a PNG of a uint8 array (H, W), (H, W, 3) or (H, W, 4)."""
    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(pixels)).save(buf, format="PNG", optimize=False)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def fit_size(hw: tuple[int, int], max_side: int) -> tuple[int, int]:
    """(h, w) scaled down so the longer side is at most `max_side` (never up)."""
    h, w = hw
    scale = min(1.0, max_side / max(h, w))
    return max(1, round(h * scale)), max(1, round(w * scale))


def film_preview(image: np.ndarray, max_side: int) -> np.ndarray:
    """The film (float (H, W) in [0, 1]) as 8-bit gray, longer side at most `max_side`."""
    small = resize_float(image, fit_size(image.shape, max_side))
    return np.round(np.clip(small, 0, 1) * 255).astype(np.uint8)


def heatmap_rgba(heat: np.ndarray, hw: tuple[int, int], colormap: str = "jet") -> np.ndarray:
    """A heat map in [0, 1] coloured and resized to `hw`; alpha is the heat (cold = clear)."""
    from matplotlib import colormaps

    h = np.clip(resize_float(heat, hw), 0, 1)
    rgba = colormaps[colormap](h)
    rgba[..., 3] = h * (h >= 0.1)
    return np.round(rgba * 255).astype(np.uint8)
