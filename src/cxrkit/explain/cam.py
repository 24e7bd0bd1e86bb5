"""Class activation maps with pytorch-grad-cam, mapped back onto the film's original pixels."""

from __future__ import annotations

import numpy as np
import torch

from cxrkit.card import Decision
from cxrkit.errors import CxrkitError
from cxrkit.io.resize import resize_float

METHODS = ("gradcam", "gradcam++", "scorecam", "eigencam", "layercam")


def cam_class(method: str) -> type:
    """The pytorch-grad-cam class for a method name (case-insensitive)."""
    from pytorch_grad_cam import EigenCAM, GradCAM, GradCAMPlusPlus, LayerCAM, ScoreCAM

    table = {
        "gradcam": GradCAM,
        "gradcam++": GradCAMPlusPlus,
        "scorecam": ScoreCAM,
        "eigencam": EigenCAM,
        "layercam": LayerCAM,
    }
    key = method.strip().lower().replace("_", "").replace("-", "").replace("plusplus", "++")
    if key not in table:
        raise CxrkitError(f"unknown CAM method {method!r}; choose one of {', '.join(METHODS)}")
    return table[key]


def class_index(decision: Decision, class_name: str | int | None, probs: np.ndarray) -> int:
    """Index of the class to explain: the named one, else the class the card's decision
    rule decides (binary by its threshold; otherwise the most probable class)."""
    classes = list(decision.class_names)
    if class_name is None:
        return decision.index(probs)
    if isinstance(class_name, int) or str(class_name).isdigit():
        idx = int(class_name)
        if not 0 <= idx < len(classes):
            raise CxrkitError(f"class index {idx} out of range (classes: {', '.join(classes)})")
        return idx
    lowered = [c.lower() for c in classes]
    if str(class_name).lower() not in lowered:
        raise CxrkitError(f"unknown class {class_name!r}; the model knows {', '.join(classes)}")
    return lowered.index(str(class_name).lower())


def compute_cam(
    model: torch.nn.Module,
    film: np.ndarray,
    target: int,
    method: str = "gradcam",
    layer: torch.nn.Module | None = None,
) -> np.ndarray:
    """CAM of class `target` for one model-input film (S, S) -> float32 (S, S) in [0, 1].

    `layer` defaults to `model.get_cam_layer()` (the registry's CAM layer). EigenCAM is
    class-agnostic (the same map for every class).
    """
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    layer = layer if layer is not None else model.get_cam_layer()
    x = torch.from_numpy(np.ascontiguousarray(film, dtype=np.float32))[None, None]
    device = next(model.parameters()).device
    x = x.to(device).requires_grad_(True)
    model.eval()
    # Gradients are needed w.r.t. the activations only (the input asks for them); skipping
    # the weight gradients makes a backward pass several times cheaper.
    flags = [p.requires_grad for p in model.parameters()]
    try:
        for p in model.parameters():
            p.requires_grad_(False)
        with cam_class(method)(model=model, target_layers=[layer]) as cam:
            if hasattr(cam, "batch_size"):
                cam.batch_size = 32
            with torch.enable_grad():
                out = cam(input_tensor=x, targets=[ClassifierOutputTarget(int(target))])
    finally:
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.requires_grad_(flag)
    return np.clip(np.nan_to_num(out[0].astype(np.float32)), 0.0, 1.0)


def to_original(cam: np.ndarray, original_hw: tuple[int, int], resize_mode: str) -> np.ndarray:
    """Map a square input-size CAM back onto the original (h, w) film pixels.

    Undoes the film's resize: `squash` stretches back, `pad` drops the letterbox bands,
    `crop` places the centre square back (the cut-off sides get 0).
    """
    h, w = (int(v) for v in original_hw)
    s = cam.shape[0]
    if resize_mode == "pad":
        scale = s / max(h, w)
        nh, nw = min(s, max(1, round(h * scale))), min(s, max(1, round(w * scale)))
        top, left = (s - nh) // 2, (s - nw) // 2
        return _resize(cam[top : top + nh, left : left + nw], (h, w))
    if resize_mode == "crop" and h != w:
        side = min(h, w)
        out = np.zeros((h, w), np.float32)
        top, left = (h - side) // 2, (w - side) // 2
        out[top : top + side, left : left + side] = _resize(cam, (side, side))
        return out
    return _resize(cam, (h, w))


def _resize(arr: np.ndarray, hw: tuple[int, int]) -> np.ndarray:
    return np.clip(resize_float(arr, hw), 0.0, 1.0)
