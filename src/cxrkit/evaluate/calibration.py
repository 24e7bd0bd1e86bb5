"""Expected calibration error and reliability-diagram bins for the three task kinds."""

from __future__ import annotations

from typing import Any

import numpy as np

N_BINS = 15


def _bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Equal-width bins over [0, 1], right-closed: (lo, hi], with 0 falling in the first bin."""
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return np.clip(np.searchsorted(edges[1:-1], confidence, side="left"), 0, n_bins - 1)


def reliability_bins(
    confidence: np.ndarray, outcome: np.ndarray, n_bins: int = N_BINS
) -> dict[str, Any]:
    """Bin ``confidence`` and report per bin the mean outcome, mean confidence and count.

    ``outcome`` is 1 where the prediction was right (or the label positive). Empty bins have
    ``None`` accuracy and confidence. ``ece`` is the count-weighted mean |accuracy - confidence|.
    """
    confidence = np.clip(np.asarray(confidence, dtype=np.float64), 0.0, 1.0)
    outcome = np.asarray(outcome, dtype=np.float64)
    idx = _bin_index(confidence, n_bins)
    counts = np.bincount(idx, minlength=n_bins).astype(np.float64)
    sum_conf = np.bincount(idx, weights=confidence, minlength=n_bins)
    sum_acc = np.bincount(idx, weights=outcome, minlength=n_bins)
    filled = counts > 0
    safe = np.where(filled, counts, 1.0)
    mean_conf = sum_conf / safe
    mean_acc = sum_acc / safe
    total = counts.sum()
    ece = float(np.sum(counts[filled] * np.abs(mean_acc[filled] - mean_conf[filled])) / total)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return {
        "n_bins": n_bins,
        "bin_edges": [float(e) for e in edges],
        "bin_centers": [float(c) for c in (edges[:-1] + edges[1:]) / 2.0],
        "accuracies": [float(a) if f else None for a, f in zip(mean_acc, filled, strict=True)],
        "confidences": [float(c) if f else None for c, f in zip(mean_conf, filled, strict=True)],
        "counts": [int(c) for c in counts],
        "ece": ece,
    }


def calibration(
    y: np.ndarray, probs: np.ndarray, task: str, n_bins: int = N_BINS
) -> tuple[float, dict[str, Any], list[float] | None]:
    """ECE, reliability bins and (multilabel only) per-class ECEs.

    Single-label: confidence is the max probability, outcome is "argmax equals the label".
    Multilabel: each column's probability against its own label; ECE is the mean of the
    per-class ECEs, and the reliability bins pool every (film, class) pair.
    """
    if task == "multilabel":
        per_class = [
            reliability_bins(probs[:, j], y[:, j], n_bins)["ece"] for j in range(y.shape[1])
        ]
        rel = reliability_bins(probs.ravel(), y.ravel(), n_bins)
        rel["kind"] = "per-class probability vs label frequency (all classes pooled)"
        rel["ece"] = float(np.mean(per_class))
        return rel["ece"], rel, per_class
    confidence = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(np.float64)
    rel = reliability_bins(confidence, correct, n_bins)
    rel["kind"] = "max-probability confidence vs accuracy"
    return rel["ece"], rel, None
