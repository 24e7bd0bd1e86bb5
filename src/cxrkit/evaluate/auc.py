"""ROC AUC by counting (Mann-Whitney), vectorised over bootstrap resamples, and percentile CIs."""

from __future__ import annotations

import numpy as np

# Upper bound on resamples x films held in memory at once (float64 arrays of this size).
_CHUNK_CELLS = 4_000_000


def weighted_auc(scores: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ROC AUC of ``scores`` for the boolean ``positive`` mask, once per row of ``weights``.

    ``weights`` is (B, N): how many times each film appears in each resample (all ones gives
    the ordinary AUC, identical to ``sklearn.metrics.roc_auc_score``; ties count one half).
    Returns (B,) floats, NaN where a resample lacks positives or negatives.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positive = np.asarray(positive, dtype=bool)
    weights = np.atleast_2d(np.asarray(weights, dtype=np.float64))
    neg_scores = scores[~positive]
    order = np.argsort(neg_scores, kind="stable")
    neg_sorted = neg_scores[order]
    pos_scores = scores[positive]
    lo = np.searchsorted(neg_sorted, pos_scores, side="left")
    hi = np.searchsorted(neg_sorted, pos_scores, side="right")

    w_pos = weights[:, positive]
    w_neg = weights[:, ~positive][:, order]
    cum = np.zeros((weights.shape[0], neg_sorted.size + 1))
    np.cumsum(w_neg, axis=1, out=cum[:, 1:])
    below = cum[:, lo]
    equal = cum[:, hi] - below
    num = np.einsum("bi,bi->b", w_pos, below + 0.5 * equal)
    den = w_pos.sum(axis=1) * cum[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def binary_auc(y_true: np.ndarray, scores: np.ndarray) -> float | None:
    """Point ROC AUC of ``scores`` for 0/1 ``y_true``; None when only one outcome is present."""
    pos = np.asarray(y_true).astype(bool)
    if pos.all() or not pos.any():
        return None
    return float(weighted_auc(scores, pos, np.ones((1, pos.size)))[0])


def stratified_counts(strata: np.ndarray, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """(B, N) resample counts: each resample draws, with replacement, as many films from each
    stratum as it holds, so every stratum (e.g. each class) keeps its size in every resample."""
    strata = np.asarray(strata)
    n = strata.shape[0]
    counts = np.zeros((n_resamples, n), dtype=np.float64)
    rows = np.arange(n_resamples)[:, None]
    for value in np.unique(strata):
        members = np.flatnonzero(strata == value)
        m = members.size
        picks = rng.integers(0, m, size=(n_resamples, m))
        flat = np.bincount((rows * m + picks).ravel(), minlength=n_resamples * m)
        counts[:, members] = flat.reshape(n_resamples, m)
    return counts


def percentile_ci(values: np.ndarray, level: float) -> list[float] | None:
    """Percentile interval of the finite ``values`` at ``level`` (e.g. 0.95); None if too few."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size < 10:
        return None
    alpha = (1.0 - level) / 2.0
    lo, hi = np.percentile(values, [100.0 * alpha, 100.0 * (1.0 - alpha)])
    return [float(lo), float(hi)]


def bootstrap_aucs(
    scores: np.ndarray,
    positives: np.ndarray,
    strata: np.ndarray,
    n_resamples: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Bootstrap AUCs for several score columns sharing the same resamples.

    ``scores`` and ``positives`` are (N, K): column k is scored against mask column k.
    Resamples are drawn stratified on ``strata`` (N,). Returns (B, K); NaN where a column
    lacks one outcome in a resample.
    """
    scores = np.asarray(scores, dtype=np.float64)
    positives = np.asarray(positives, dtype=bool)
    n, k = scores.shape
    out = np.full((n_resamples, k), np.nan)
    chunk = max(1, min(n_resamples, _CHUNK_CELLS // max(n, 1)))
    for start in range(0, n_resamples, chunk):
        b = min(chunk, n_resamples - start)
        counts = stratified_counts(strata, b, rng)
        for j in range(k):
            pos = positives[:, j]
            if pos.all() or not pos.any():
                continue
            out[start : start + b, j] = weighted_auc(scores[:, j], pos, counts)
    return out
