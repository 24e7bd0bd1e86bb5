"""Boxes from heat maps (threshold + connected components) and their scores: IoU, pointing game."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Box:
    """An axis-aligned box in pixel coordinates: x0, y0 inclusive; x1, y1 exclusive."""

    x0: float
    y0: float
    x1: float
    y1: float
    label: str = ""
    score: float = 1.0

    @classmethod
    def from_xywh(cls, x: float, y: float, w: float, h: float, label: str = "") -> Box:
        """A box from top-left corner, width and height (NIH and COCO layout)."""
        return cls(float(x), float(y), float(x) + float(w), float(y) + float(h), label)

    @property
    def width(self) -> float:
        """x1 - x0."""
        return max(0.0, self.x1 - self.x0)

    @property
    def height(self) -> float:
        """y1 - y0."""
        return max(0.0, self.y1 - self.y0)

    @property
    def area(self) -> float:
        """width * height."""
        return self.width * self.height

    def xywh(self) -> tuple[float, float, float, float]:
        """(x, y, w, h)."""
        return self.x0, self.y0, self.width, self.height

    def scaled(self, sx: float, sy: float) -> Box:
        """The box in a film resized by factors (sx, sy)."""
        return Box(self.x0 * sx, self.y0 * sy, self.x1 * sx, self.y1 * sy, self.label, self.score)

    def shifted(self, dx: float, dy: float) -> Box:
        """The box moved by (dx, dy) pixels."""
        return Box(self.x0 + dx, self.y0 + dy, self.x1 + dx, self.y1 + dy, self.label, self.score)

    def to_dict(self) -> dict[str, float | str]:
        """JSON-ready dict with x0, y0, x1, y1, label, score (rounded to 0.01 px)."""
        d = asdict(self)
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in d.items()}


def boxes_from_heatmap(
    heatmap: np.ndarray,
    threshold: float = 0.5,
    min_area_fraction: float = 0.002,
    max_boxes: int = 10,
) -> list[Box]:
    """Boxes around the connected regions where `heatmap >= threshold * max(heatmap)`.

    Coordinates are in the heat map's own pixels (the original film's, for `explain`).
    Regions smaller than `min_area_fraction` of the image are dropped. Each box's
    `score` is the peak heat inside it; boxes come sorted by score, at most `max_boxes`.
    """
    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim != 2:
        raise ValueError(f"heat map must be 2-D, got shape {h.shape}")
    peak = float(np.nanmax(h)) if h.size else 0.0
    if peak <= 0:
        return []
    mask = h >= threshold * peak
    labels, n = ndimage.label(mask)
    if n == 0:
        return []
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    min_px = min_area_fraction * h.size
    boxes = []
    for k, sl in enumerate(ndimage.find_objects(labels), start=1):
        if sl is None or sizes[k] < min_px:
            continue
        peak_k = float(h[sl][labels[sl] == k].max())
        boxes.append(
            Box(
                float(sl[1].start),
                float(sl[0].start),
                float(sl[1].stop),
                float(sl[0].stop),
                score=peak_k,
            )
        )
    return sorted(boxes, key=lambda b: -b.score)[:max_boxes]


def box_iou(a: Box, b: Box) -> float:
    """Intersection over union of two boxes (0 when they do not overlap)."""
    iw = min(a.x1, b.x1) - max(a.x0, b.x0)
    ih = min(a.y1, b.y1) - max(a.y0, b.y0)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = a.area + b.area - inter
    return float(inter / union) if union > 0 else 0.0


def best_iou(predicted: Sequence[Box], truth: Sequence[Box]) -> float:
    """The highest IoU between any predicted and any true box (0 if either list is empty)."""
    return max((box_iou(p, t) for p in predicted for t in truth), default=0.0)


def pointing_game(heatmap: np.ndarray, truth: Sequence[Box], tolerance: float = 15.0) -> bool:
    """True when the heat map's maximum falls inside a true box grown by `tolerance` px.

    The pointing game of Zhang et al. (ECCV 2016), with their 15-pixel tolerance.
    """
    h = np.asarray(heatmap, dtype=np.float32)
    y, x = np.unravel_index(int(np.nanargmax(h)), h.shape)
    px, py = x + 0.5, y + 0.5
    return any(
        b.x0 - tolerance <= px <= b.x1 + tolerance and b.y0 - tolerance <= py <= b.y1 + tolerance
        for b in truth
    )


def box_heatmap(shape: tuple[int, int], boxes: Sequence[Box], blur: float = 0.0) -> np.ndarray:
    """A float32 map of `shape` that is 1 inside the boxes (optionally Gaussian-blurred)."""
    out = np.zeros(shape, np.float32)
    for b in boxes:
        y0, y1 = max(0, round(b.y0)), min(shape[0], round(b.y1))
        x0, x1 = max(0, round(b.x0)), min(shape[1], round(b.x1))
        out[y0:y1, x0:x1] = 1.0
    if blur > 0:
        out = ndimage.gaussian_filter(out, blur)
        out /= max(float(out.max()), 1e-12)
    return out


def score_heatmap(
    heatmap: np.ndarray, truth: Sequence[Box], threshold: float = 0.5
) -> dict[str, float | bool | int]:
    """IoU of the heat map's boxes against the true boxes, and the pointing-game hit."""
    predicted = boxes_from_heatmap(heatmap, threshold)
    return {
        "iou": best_iou(predicted, truth),
        "pointing_hit": pointing_game(heatmap, truth),
        "n_boxes": len(predicted),
    }
