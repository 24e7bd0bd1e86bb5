"""Overlay PNGs: the film in gray, the lung mask as a translucent colour plus its contour."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

FILL_RGB = (0, 200, 255)
CONTOUR_RGB = (255, 220, 0)
# Comparison pictures: reference contour green, prediction contour red; missed lung
# (reference only) tinted blue, extra lung (prediction only) tinted red.
TRUTH_RGB = (40, 220, 40)
PRED_RGB = (255, 40, 40)
MISSED_RGB = (0, 120, 255)
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


def _enlarged(gray: np.ndarray, masks: list[np.ndarray], min_side: int):
    factor = max(1, -(-min_side // max(gray.shape)))
    if factor == 1:
        return gray, masks
    size_wh = (gray.shape[1] * factor, gray.shape[0] * factor)
    gray = np.asarray(Image.fromarray(gray).resize(size_wh, Image.Resampling.BILINEAR))
    masks = [
        np.asarray(Image.fromarray(m).resize(size_wh, Image.Resampling.NEAREST)) for m in masks
    ]
    return gray, masks


def comparison_image(
    film: np.ndarray, pred: np.ndarray, truth: np.ndarray, alpha: float = 0.4, min_side: int = 384
) -> np.ndarray:
    """uint8 (H, W, 3): the film with the reference contour (green), the predicted contour
    (red), missed lung tinted blue and extra lung tinted red. Small films are enlarged."""
    gray = np.clip(np.asarray(film, dtype=np.float32), 0.0, 1.0)
    p, t = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if not gray.shape == p.shape == t.shape:
        raise ValueError(f"film {gray.shape}, prediction {p.shape} and reference {t.shape} differ")
    gray, (p, t) = _enlarged(gray, [p, t], min_side)
    rgb = np.repeat(gray[..., None] * 255.0, 3, axis=-1)
    for region, colour in ((t & ~p, MISSED_RGB), (p & ~t, PRED_RGB)):
        rgb[region] = (1.0 - alpha) * rgb[region] + alpha * np.array(colour, dtype=np.float32)
    width = max(1, round(max(p.shape) / 300))
    for m, colour in ((t, TRUTH_RGB), (p, PRED_RGB)):
        rgb[m & ~ndimage.binary_erosion(m, iterations=width, border_value=0)] = colour
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def save_comparison_png(
    path: str | Path, film: np.ndarray, pred: np.ndarray, truth: np.ndarray
) -> Path:
    """Write `comparison_image(film, pred, truth)` as an RGB PNG."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(comparison_image(film, pred, truth)).save(path)
    return path
