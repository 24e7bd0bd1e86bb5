"""Crop a film to the bounding box of its lung mask, plus a margin."""

from __future__ import annotations

import numpy as np


def lung_bbox(mask: np.ndarray, margin: float = 0.1) -> tuple[int, int, int, int] | None:
    """(top, bottom, left, right) of the mask's box grown by `margin` of its height/width.

    Bottom and right are exclusive; the box is clipped to the image. None for an empty mask.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    dy, dx = round(margin * (bottom - top)), round(margin * (right - left))
    height, width = m.shape
    return (
        int(max(0, top - dy)),
        int(min(height, bottom + dy)),
        int(max(0, left - dx)),
        int(min(width, right + dx)),
    )


def crop_to_lungs(image: np.ndarray, mask: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """The part of `image` inside the lung box (`lung_bbox`); the whole image if `mask` is empty.

    `mask` may have another size than `image` (e.g. a mask computed on a thumbnail): its
    box is scaled to the image. Returns a view into `image` (copy it before writing).
    """
    img = np.asarray(image)
    if img.ndim < 2:
        raise ValueError(f"image must be at least 2-D, got shape {img.shape}")
    box = lung_bbox(mask, margin)
    if box is None:
        return img
    top, bottom, left, right = box
    mh, mw = np.shape(mask)
    ih, iw = img.shape[:2]
    if (mh, mw) != (ih, iw):
        top, bottom = int(np.floor(top * ih / mh)), int(np.ceil(bottom * ih / mh))
        left, right = int(np.floor(left * iw / mw)), int(np.ceil(right * iw / mw))
    return img[top:bottom, left:right]
