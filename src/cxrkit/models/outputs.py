"""A classifier's outputs as numbers for a row, without torch: logits to probabilities, and
the out-of-distribution columns. The graph runtimes (onnx, onnx-int8, openvino) use these,
so `cxr predict --runtime onnx` never imports torch; `cxrkit.models.inference` holds the
torch twins for the torch runtime."""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrkit.card import ModelCard

OOD_WARNING = "out of distribution: unlike the films this model was trained on"


def logits_to_probs_np(logits: np.ndarray, task: str) -> np.ndarray:
    """Softmax over classes (binary, multi-class) or independent sigmoids (multi-label) of
    logits (B, C), in their own float precision, computed as torch does (max subtracted,
    multiplied by the reciprocal of the sum): the two agree to about 1 float32 ulp."""
    x = np.asarray(logits)
    if task == "multilabel":
        return (1.0 / (1.0 + np.exp(-x))).astype(x.dtype, copy=False)
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e * (np.asarray(1, x.dtype) / e.sum(axis=1, keepdims=True))


def ood_fields(score: float | None, card: ModelCard) -> dict[str, Any]:
    """`out_of_distribution` / `ood_score` for an output row (None when the model has none)."""
    threshold = card.screening.ood_threshold
    if score is None or threshold is None:
        return {"out_of_distribution": None, "ood_score": None}
    if not np.isfinite(score):  # features that are not numbers are as far as it gets
        return {"out_of_distribution": True, "ood_score": None}
    return {
        "out_of_distribution": bool(score > threshold),
        "ood_score": round(float(score), 4),
    }
