"""`explain(model, card, image)`: a CAM heat map at the film's original size, plus facts."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from cxrkit.explain.boxes import boxes_from_heatmap
from cxrkit.explain.cam import class_index, compute_cam, to_original
from cxrkit.io import resize_film
from cxrkit.models.calibration import apply_card_calibration
from cxrkit.models.inference import logits_to_probs


def explain(
    model: torch.nn.Module,
    card: dict[str, Any],
    image: np.ndarray,
    *,
    method: str = "gradcam",
    class_name: str | int | None = None,
    box_threshold: float = 0.5,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Heat map (H, W) float32 in [0, 1] at the original size of `image`, and an info dict.

    `image` is a film as `read_image` gives it (float (H, W) in [0, 1]). The map is for
    `class_name` (name or index) or, by default, the class the model decides. `info` holds
    the class, its probability, all probabilities, the method, the CAM layer and the boxes
    (original pixel coordinates) of the map's hot regions.
    """
    pre = card["preprocessing"]
    film = resize_film(image, int(pre["size"]), pre.get("resize_mode", "squash"))
    x = torch.from_numpy(film)[None, None].to(next(model.parameters()).device)
    model.eval()
    with torch.inference_mode():
        probs = logits_to_probs(model(x), card["task"]).float().cpu().numpy()
    probs = apply_card_calibration(probs, card)[0]  # the probability a user sees
    target = class_index(card, class_name, probs)
    cam = compute_cam(model, film, target, method)
    heatmap = to_original(cam, image.shape, pre.get("resize_mode", "squash"))
    classes = list(card["class_names"])
    info: dict[str, Any] = {
        "class": classes[target],
        "class_index": target,
        "probability": float(probs[target]),
        "probabilities": {c: float(p) for c, p in zip(classes, probs, strict=True)},
        "method": method,
        "cam_layer": getattr(model, "cam_layer", None),
        "input_size": int(pre["size"]),
        "original_size": [int(v) for v in image.shape],
        "boxes": [b.to_dict() for b in boxes_from_heatmap(heatmap, box_threshold)],
    }
    return heatmap, info
