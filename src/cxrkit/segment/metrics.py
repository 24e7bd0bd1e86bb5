"""Mask agreement (Dice, IoU, 95% Hausdorff distance) and heat-map energy inside a mask."""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage


def _pair(pred: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(pred, dtype=bool), np.asarray(truth, dtype=bool)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"masks must be 2-D and the same shape, got {a.shape} and {b.shape}")
    return a, b


def dice(pred: np.ndarray, truth: np.ndarray) -> float:
    """Dice coefficient 2|A∩B| / (|A| + |B|); 1.0 when both masks are empty."""
    a, b = _pair(pred, truth)
    total = int(a.sum()) + int(b.sum())
    return 1.0 if total == 0 else 2.0 * int(np.logical_and(a, b).sum()) / total


def iou(pred: np.ndarray, truth: np.ndarray) -> float:
    """Intersection over union |A∩B| / |A∪B|; 1.0 when both masks are empty."""
    a, b = _pair(pred, truth)
    union = int(np.logical_or(a, b).sum())
    return 1.0 if union == 0 else int(np.logical_and(a, b).sum()) / union


def _surface(mask: np.ndarray) -> np.ndarray:
    """Boundary pixels: the mask minus its 8-connected erosion (border pixels count as edge)."""
    eroded = ndimage.binary_erosion(mask, structure=np.ones((3, 3), bool), border_value=0)
    return mask & ~eroded


def surface_distances(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Distances (pixels) from each boundary pixel of either mask to the other mask's boundary."""
    a, b = _pair(pred, truth)
    sa, sb = _surface(a), _surface(b)
    to_b = ndimage.distance_transform_edt(~sb)[sa]
    to_a = ndimage.distance_transform_edt(~sa)[sb]
    return np.concatenate([to_b, to_a])


def hd95(pred: np.ndarray, truth: np.ndarray) -> float:
    """95th percentile of the symmetric boundary distances, in pixels (MedPy's definition).

    0.0 for two empty masks, inf when exactly one is empty.
    """
    a, b = _pair(pred, truth)
    if not a.any() and not b.any():
        return 0.0
    if not a.any() or not b.any():
        return math.inf
    return float(np.percentile(surface_distances(a, b), 95))


def mask_scores(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """Dice, IoU and HD95 of one predicted mask against its reference."""
    return {"dice": dice(pred, truth), "iou": iou(pred, truth), "hd95": hd95(pred, truth)}


def heatmap_energy_in_mask(heatmap: np.ndarray, mask: np.ndarray) -> float:
    """Share of a heat map's energy (sum of its positive values) that falls inside `mask`.

    A heat map of another size (e.g. a 7x7 or 224x224 CAM) is resized bilinearly to the
    mask's shape first. Returns a float in [0, 1], or NaN when the map has no positive energy.
    """
    m = np.asarray(mask, dtype=bool)
    h = np.asarray(heatmap, dtype=np.float32)
    if m.ndim != 2 or h.ndim != 2:
        raise ValueError(f"heatmap and mask must be 2-D, got {h.shape} and {m.shape}")
    if h.shape != m.shape:
        from PIL import Image

        size_wh = (m.shape[1], m.shape[0])
        h = np.asarray(Image.fromarray(h).resize(size_wh, Image.Resampling.BILINEAR))
    energy = np.clip(np.nan_to_num(h, nan=0.0), 0.0, None)
    total = float(energy.sum(dtype=np.float64))
    if total <= 0.0:
        return math.nan
    return float(energy[m].sum(dtype=np.float64)) / total


def summarize_scores(rows: list[dict], worst: int = 5) -> dict:
    """Mean, median and min/max of Dice, IoU and HD95 over films, plus the `worst` films by Dice."""
    out: dict = {"n": len(rows)}
    for key in ("dice", "iou", "hd95"):
        values = np.array([r[key] for r in rows], dtype=np.float64)
        finite = values[np.isfinite(values)]
        out[key] = {
            "mean": float(values.mean()) if len(values) else math.nan,
            "median": float(np.median(values)) if len(values) else math.nan,
            "min": float(finite.min()) if len(finite) else math.nan,
            "max": float(values.max()) if len(values) else math.nan,
        }
    ranked = sorted(rows, key=lambda r: r["dice"])[:worst]
    fields = ("set", "path", "view", "dice", "iou", "hd95")
    out["worst"] = [{k: r[k] for k in fields if k in r} for r in ranked]
    return out
