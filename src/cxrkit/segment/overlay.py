"""Overlay PNGs: the film in gray, the lung mask as a translucent colour plus its contour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

FILL_RGB = (0, 200, 255)
CONTOUR_RGB = (255, 220, 0)
MIN_SIDE = 256  # small films (thumbnails) are enlarged so the overlay is readable


def overlay_image(
    film: np.ndarray, mask: np.ndarray, alpha: float = 0.35, min_side: int = MIN_SIDE
) -> np.ndarray:
    """uint8 (H, W, 3) picture: gray film, mask blended in `FILL_RGB`, contour in `CONTOUR_RGB`.

    Films whose long side is under `min_side` pixels are enlarged (film bilinear, mask
    nearest) by an integer factor first.
    """
    gray = np.clip(np.asarray(film, dtype=np.float32), 0.0, 1.0)
    m = np.asarray(mask, dtype=bool)
    if gray.shape != m.shape:
        raise ValueError(f"film {gray.shape} and mask {m.shape} differ in size")
    factor = max(1, -(-min_side // max(gray.shape)))
    if factor > 1:
        size_wh = (gray.shape[1] * factor, gray.shape[0] * factor)
        gray = np.asarray(Image.fromarray(gray).resize(size_wh, Image.Resampling.BILINEAR))
        m = np.asarray(Image.fromarray(m).resize(size_wh, Image.Resampling.NEAREST))
    rgb = np.repeat(gray[..., None] * 255.0, 3, axis=-1)
    rgb[m] = (1.0 - alpha) * rgb[m] + alpha * np.array(FILL_RGB, dtype=np.float32)
    width = max(1, round(max(m.shape) / 400))
    inner = ndimage.binary_erosion(m, iterations=width, border_value=0)
    rgb[m & ~inner] = CONTOUR_RGB
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def save_mask_png(path: str | Path, mask: np.ndarray) -> Path:
    """Write a boolean mask as an 8-bit PNG with values 0 and 255."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(mask, dtype=np.uint8) * 255).save(path)
    return path


def save_overlay_png(path: str | Path, film: np.ndarray, mask: np.ndarray) -> Path:
    """Write `overlay_image(film, mask)` as an RGB PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(overlay_image(film, mask)).save(path)
    return path
