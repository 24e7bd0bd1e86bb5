"""`Calibration`: the card's probability adjustments (site calibration, prior shift).

Every path that hands probabilities to a user (predict, evaluate, serve, explain; torch and
ONNX alike) applies `Calibration.apply` to the network's probabilities, in this order:

- `probability_calibration`: `{"method": "temperature", "params": {"temperature": T}}`
  (softmax(log p / T)), `{"method": "platt", "params": {"a": a, "b": b}}` (binary:
  p1 = sigmoid(a * log(p1 / p0) + b)), `{"method": "isotonic", "params": {"x": [...],
  "y": [...]}}` (binary: p1 = interp(p1, x, y)) or `{"method": "none"}`;
- `prior_shift`: `{"train": [...], "site": [...]}` class priors; p'(c) is proportional to
  p(c) * site(c) / train(c) (Saerens et al., Neural Computation 2002).

A card without them gets back the very array it passed in (bit for bit).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

PROBABILITY_METHODS = ("none", "temperature", "platt", "isotonic")
_EPS = 1e-12


class CalibrationError(ValueError):
    """A calibration record that cannot be applied to the model it sits in."""


@dataclass(frozen=True)
class Calibration:
    """The card's `probability_calibration` and `prior_shift` records (None: absent)."""

    probability: Mapping[str, Any] | None = None
    prior_shift: Mapping[str, Any] | None = None

    def check(self, task: str, n_classes: int) -> None:
        """Raise `CalibrationError` when a record does not fit the task (checked on read)."""
        method = self.method
        if method not in PROBABILITY_METHODS:
            raise CalibrationError(f"field 'probability_calibration': unknown method {method!r}")
        if method != "none" and (
            task == "multilabel" or (method != "temperature" and task != "binary")
        ):
            raise CalibrationError(
                f"field 'probability_calibration': {method!r} does not apply to {task}"
            )
        params = (self.probability or {}).get("params") or {}
        need = {"temperature": ("temperature",), "platt": ("a", "b"), "isotonic": ("x", "y")}
        missing = [k for k in need.get(method, ()) if k not in params]
        if missing:
            raise CalibrationError(f"field 'probability_calibration': {method!r} lacks {missing}")
        if self.prior_shift:
            for key in ("train", "site"):
                values = np.asarray(self.prior_shift.get(key, []), dtype=np.float64)
                if values.shape != (n_classes,) or not np.all(np.isfinite(values)):
                    raise CalibrationError(
                        f"field 'prior_shift.{key}': needs {n_classes} finite priors, "
                        f"got {values.tolist()}"
                    )

    @property
    def method(self) -> str:
        """The probability map's name ('none' when there is none)."""
        return str((self.probability or {}).get("method", "none"))

    @property
    def active(self) -> bool:
        """Whether any probability adjustment is asked for."""
        return bool(self.prior_shift) or self.method != "none"

    def apply(self, probs: np.ndarray, task: str) -> np.ndarray:
        """The calibration, then the prior shift, applied to (N, C) model probabilities."""
        if not self.active:
            return probs
        p = np.asarray(probs, dtype=np.float64)
        if p.ndim != 2:
            raise ValueError(f"probabilities must be (N, C), got shape {p.shape}")
        method = self.method
        if method != "none":
            if task == "multilabel" or (method != "temperature" and task != "binary"):
                raise CalibrationError(f"calibration {method!r} does not apply to {task}")
            params = (self.probability or {}).get("params") or {}
            p = probability_map(p, method, params)
        if self.prior_shift and task != "multilabel":
            p = prior_shift(p, self.prior_shift["train"], self.prior_shift["site"])
        return p.astype(np.asarray(probs).dtype, copy=False)


def probability_map(p: np.ndarray, method: str, params: Mapping[str, Any]) -> np.ndarray:
    """One calibration map on softmax columns (binary: column 1 is positive)."""
    if method == "temperature":
        z = np.log(np.clip(p, _EPS, 1.0)) / float(params["temperature"])
        z -= z.max(axis=1, keepdims=True)
        e = np.exp(z)
        return e / e.sum(axis=1, keepdims=True)
    if method == "platt":
        p1 = sigmoid(float(params["a"]) * binary_logit(p) + float(params["b"]))
    elif method == "isotonic":
        p1 = np.interp(p[:, 1], np.asarray(params["x"], float), np.asarray(params["y"], float))
    else:
        raise CalibrationError(f"unknown probability_calibration method {method!r}")
    return np.column_stack([1.0 - p1, p1])


def prior_shift(p: np.ndarray, train: Any, site: Any) -> np.ndarray:
    """Re-weight softmax probabilities from the training class prior to a site's prior."""
    w = np.asarray(site, dtype=np.float64) / np.clip(
        np.asarray(train, dtype=np.float64), _EPS, None
    )
    if w.shape != (p.shape[1],):
        raise CalibrationError(f"prior_shift has {w.size} classes, the model {p.shape[1]}")
    q = p * w[None, :]
    return q / np.clip(q.sum(axis=1, keepdims=True), _EPS, None)


def binary_logit(p: np.ndarray) -> np.ndarray:
    """log(p1 / p0) of binary softmax columns, clipped away from 0 and 1."""
    return np.log(np.clip(p[:, 1], _EPS, 1.0)) - np.log(np.clip(p[:, 0], _EPS, 1.0))


def sigmoid(z: np.ndarray) -> np.ndarray:
    """Numerically stable logistic function."""
    return np.exp(-np.logaddexp(0.0, -z))
