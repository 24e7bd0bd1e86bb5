"""CAM heat maps at the film's original size, plus facts, for a `Classifier`'s input.

`Classifier.explain(image)` is the way in: it prepares the film exactly as `predict` does
(the card's crop and resize) and hands the prepared input here. This package comes before
the classifier and never imports it; the deprecated `explain(model, card, image)` wrapper
is `cxrkit.classifier.api.explain`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cxrkit.card import ModelCard
from cxrkit.explain.boxes import boxes_from_heatmap
from cxrkit.explain.cam import class_index, compute_cam, to_original


def explain_film(
    model: torch.nn.Module,
    card: ModelCard,
    film: np.ndarray,
    probs: np.ndarray,
    original_hw: tuple[int, ...],
    box: tuple[int, int, int, int],
    *,
    method: str = "gradcam",
    class_name: str | int | None = None,
    box_threshold: float = 0.5,
) -> tuple[np.ndarray, dict[str, Any]]:
    """CAM of a prepared network input `film` (S, S) whose probabilities are `probs`.

    `box` is where the (cropped) input came from in the original film of size
    `original_hw`; the map is resized back into that box and is 0 outside it.
    """
    pre = card.preprocessing
    target = class_index(card.require_decision(), class_name, probs)
    cam = compute_cam(model, film, target, method)
    top, bottom, left, right = box
    inside = to_original(cam, (bottom - top, right - left), pre.resize_mode)
    h, w = (int(v) for v in original_hw[:2])
    if (top, bottom, left, right) == (0, h, 0, w):
        heatmap = inside
    else:
        heatmap = np.zeros((h, w), np.float32)
        heatmap[top:bottom, left:right] = inside
    classes = list(card.class_names)
    info: dict[str, Any] = {
        "class": classes[target],
        "class_index": target,
        "probability": float(probs[target]),
        "probabilities": {c: float(p) for c, p in zip(classes, probs, strict=True)},
        "method": method,
        "cam_layer": getattr(model, "cam_layer", None),
        "input_size": pre.size,
        "original_size": [h, w],
        "crop": pre.crop,
        "crop_box": [int(v) for v in box],
        "boxes": [b.to_dict() for b in boxes_from_heatmap(heatmap, box_threshold)],
    }
    return heatmap, info
