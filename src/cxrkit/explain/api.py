"""CAM heat maps at the film's original size, plus facts, for a `Classifier`'s input.

`Classifier.explain(image)` is the way in: it prepares the film exactly as `predict` does
(the card's crop and resize) and hands the prepared input here. `explain(model, card,
image)`, deprecated, wraps a loaded `(model, card)` pair in a new `Classifier` per call.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cxrkit.card import ModelCard
from cxrkit.explain.boxes import boxes_from_heatmap
from cxrkit.explain.cam import class_index, compute_cam, to_original

if TYPE_CHECKING:
    from cxrkit.models.ood import FeatureReference


def explain(
    model: torch.nn.Module,
    card: ModelCard | dict[str, Any],
    image: np.ndarray,
    *,
    method: str = "gradcam",
    class_name: str | int | None = None,
    box_threshold: float = 0.5,
    screen: bool = True,
    reference: FeatureReference | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Heat map (H, W) float32 in [0, 1] at the original size of `image`, and an info dict.

    `image` is a film as `read_image` gives it (float (H, W) in [0, 1]). The map is for
    `class_name` (name or index) or, by default, the class the model decides. `info` holds
    the class, its probability, all probabilities, the method, the CAM layer and the boxes
    (original pixel coordinates) of the map's hot regions, and the flags a `predict` row
    carries (`warning`; with `screen` also view, polarity, not-a-chest-film). Whether the
    film is out of distribution is judged only with the model's feature `reference`
    (`cxrkit.models.ood.load_feature_reference(model_file)`; `Classifier.load` reads it
    itself); without one, `out_of_distribution` is None. Same as
    `Classifier(model, card, reference=reference).explain(image, ...)`.

    Deprecated (kept for one release): hold a `Classifier` and call its `explain`; this
    wrapper builds a new one per call.
    """
    import warnings

    from cxrkit.classifier import Classifier

    warnings.warn(
        "cxrkit.explain.explain(model, card, image) is deprecated; use "
        "Classifier.load(path).explain(image)",
        DeprecationWarning,
        stacklevel=2,
    )
    clf = Classifier(model, card, reference=reference)
    return clf.explain(
        image, method, class_name=class_name, box_threshold=box_threshold, screen=screen
    )


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
