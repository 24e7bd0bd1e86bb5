"""The card's probability adjustments (site calibration, prior shift), applied in one place.

Every path that hands probabilities to a user (predict, evaluate, serve, explain; torch and
ONNX alike) calls `apply_card_calibration` on the network's probabilities. Two optional
card keys drive it, applied in this order:

- `probability_calibration`: `{"method": "temperature", "params": {"temperature": T}}`
  (softmax(log p / T)), `{"method": "platt", "params": {"a": a, "b": b}}` (binary:
  p1 = sigmoid(a * log(p1 / p0) + b)), `{"method": "isotonic", "params": {"x": [...],
  "y": [...]}}` (binary: p1 = interp(p1, x, y)) or `{"method": "none"}`;
- `prior_shift`: `{"train": [...], "site": [...]}` class priors; p'(c) is proportional to
  p(c) * site(c) / train(c) (Saerens et al., Neural Computation 2002).

A card without them gets back the very array it passed in (bit for bit).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrkit.errors import ModelFileError

PROBABILITY_METHODS = ("none", "temperature", "platt", "isotonic")
_EPS = 1e-12


def has_card_calibration(card: dict[str, Any]) -> bool:
    """Whether the card asks for any probability adjustment."""
    cal = card.get("probability_calibration") or {}
    return bool(card.get("prior_shift")) or cal.get("method", "none") != "none"


def apply_card_calibration(probs: np.ndarray, card: dict[str, Any]) -> np.ndarray:
    """The card's calibration, then its prior shift, applied to (N, C) model probabilities."""
    if not has_card_calibration(card):
        return probs
    task = card.get("task", "binary")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"probabilities must be (N, C), got shape {p.shape}")
    cal = card.get("probability_calibration") or {}
    method = cal.get("method", "none")
    params = cal.get("params") or {}
    if method not in PROBABILITY_METHODS:
        raise ModelFileError(f"unknown probability_calibration method {method!r} in the card")
    if method != "none":
        if task == "multilabel" or (method != "temperature" and task != "binary"):
            raise ModelFileError(f"probability calibration {method!r} does not apply to {task}")
        p = _calibrate(p, method, params)
    shift = card.get("prior_shift")
    if shift and task != "multilabel":
        p = prior_shift(p, shift["train"], shift["site"])
    return p.astype(np.asarray(probs).dtype, copy=False)


def _calibrate(p: np.ndarray, method: str, params: dict[str, Any]) -> np.ndarray:
    """One calibration map on softmax columns (binary: column 1 is positive)."""
    if method == "temperature":
        z = np.log(np.clip(p, _EPS, 1.0)) / float(params["temperature"])
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    if method == "platt":
        p1 = sigmoid(float(params["a"]) * binary_logit(p) + float(params["b"]))
    else:  # isotonic
        p1 = np.interp(p[:, 1], np.asarray(params["x"], float), np.asarray(params["y"], float))
    return np.column_stack([1.0 - p1, p1])


def prior_shift(p: np.ndarray, train: Any, site: Any) -> np.ndarray:
    """Re-weight softmax probabilities from the training class prior to a site's prior."""
    w = np.asarray(site, dtype=np.float64) / np.clip(
        np.asarray(train, dtype=np.float64), _EPS, None
    )
    if w.shape != (p.shape[1],):
        raise ModelFileError(f"prior_shift has {w.size} classes, the model {p.shape[1]}")
    q = p * w[None, :]
    return q / np.clip(q.sum(axis=1, keepdims=True), _EPS, None)


def binary_logit(p: np.ndarray) -> np.ndarray:
    """log(p1 / p0) of binary softmax columns, clipped away from 0 and 1."""
    return np.log(np.clip(p[:, 1], _EPS, 1.0)) - np.log(np.clip(p[:, 0], _EPS, 1.0))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return np.exp(-np.logaddexp(0.0, -z))
