"""Figures of a site calibration measured on films it was not fitted on (patient-grouped K-fold).

Rule for "too small" (documented in docs/SITE.md): a warning when either class has fewer
than MIN_PER_CLASS films, or when the bootstrap 95 % CI of the cross-validated accuracy is
wider than +/- `ci_width` (default 5 points).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.errors import CxrkitError
from cxrkit.evaluate.metrics import compute_metrics
from cxrkit.site.calibrate import fit_site, site_decisions

MIN_PER_CLASS = 30
DEFAULT_CI_WIDTH = 0.05


def cross_validated(
    y: np.ndarray,
    raw_probs: np.ndarray,
    groups: np.ndarray | None,
    card: ModelCard | dict[str, Any],
    method: str,
    probabilities: str,
    folds: int = 5,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """Out-of-fold calibrated probabilities, decisions and each fold's fitted threshold."""
    card = ModelCard.from_dict(card)
    from sklearn.model_selection import StratifiedGroupKFold

    counts = np.bincount(y, minlength=2)
    if folds < 2:
        raise CxrkitError(f"folds={folds}: cross-validation needs at least 2 folds")
    if counts.min() < folds:
        raise CxrkitError(
            f"the site set has {counts.min()} film(s) of one class: too few for {folds} folds"
        )
    g = np.arange(len(y)) if groups is None else np.asarray(groups)
    if len(np.unique(g)) < folds:
        raise CxrkitError(f"the site set has fewer than {folds} patients: too few for the folds")
    splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    probs = np.zeros_like(raw_probs)
    pred = np.zeros(len(y), dtype=np.int64)
    thresholds: list[float] = []
    for fit_idx, test_idx in splitter.split(raw_probs, y, g):
        cal, th = fit_site(y[fit_idx], raw_probs[fit_idx], card, method, probabilities)
        probs[test_idx], pred[test_idx] = site_decisions(raw_probs[test_idx], card, cal, th[0])
        thresholds.append(th[0])
    return probs, pred, thresholds


def site_figures(
    y: np.ndarray,
    probs: np.ndarray,
    pred: np.ndarray,
    class_names: list[str],
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """AUC, accuracy, sensitivity, specificity (with CIs), ECE, predicted vs true positive rate."""
    m = compute_metrics(y, probs, class_names, "binary", thresholds=0.5, n_bootstrap=n_bootstrap)
    pos, neg = y == 1, y == 0
    out: dict[str, Any] = {
        "n": int(len(y)),
        "auc": m["auc"],
        "auc_ci": m["auc_ci"],
        "accuracy": float(np.mean(pred == y)),
        "sensitivity": float(np.mean(pred[pos] == 1)) if pos.any() else None,
        "specificity": float(np.mean(pred[neg] == 0)) if neg.any() else None,
        "ece": m["ece"],
        "predicted_positive_rate": float(np.mean(pred)),
        "true_positive_rate": float(np.mean(y)),
    }
    out.update(_decision_cis(y, pred, n_bootstrap, seed))
    return out


def _decision_cis(y: np.ndarray, pred: np.ndarray, n_bootstrap: int, seed: int) -> dict[str, Any]:
    """Percentile bootstrap CIs of accuracy, sensitivity, specificity (resampled per class)."""
    if n_bootstrap <= 0:
        return {"accuracy_ci": None, "sensitivity_ci": None, "specificity_ci": None}
    rng = np.random.default_rng(seed)
    right = (pred == y).astype(np.float64)
    by_class = [right[y == c] for c in (0, 1)]
    hits = []
    for r in by_class:
        if r.size == 0:
            hits.append(np.full(n_bootstrap, np.nan))
        else:
            hits.append(rng.choice(r, size=(n_bootstrap, r.size), replace=True).sum(axis=1))
    n0, n1 = (r.size for r in by_class)
    acc = (np.nan_to_num(hits[0]) + np.nan_to_num(hits[1])) / max(n0 + n1, 1)

    def ci(v: np.ndarray) -> list[float] | None:
        return None if np.isnan(v).all() else [float(q) for q in np.percentile(v, [2.5, 97.5])]

    return {
        "accuracy_ci": ci(acc),
        "sensitivity_ci": ci(hits[1] / n1) if n1 else None,
        "specificity_ci": ci(hits[0] / n0) if n0 else None,
    }


def size_warnings(
    class_counts: dict[str, int], after: dict[str, Any], ci_width: float = DEFAULT_CI_WIDTH
) -> list[str]:
    """Warnings when the set is too small for a CI of +/- `ci_width` on the accuracy."""
    out = []
    small = {c: n for c, n in class_counts.items() if n < MIN_PER_CLASS}
    if small:
        listed = ", ".join(f"{n} {c}" for c, n in small.items())
        out.append(
            f"small site set: {listed} film(s) (fewer than {MIN_PER_CLASS} of a class); "
            "sensitivity/specificity and the fitted threshold are uncertain"
        )
    ci = after.get("accuracy_ci")
    if ci is not None:
        half = (ci[1] - ci[0]) / 2.0
        if half > ci_width + 1e-9:
            n = sum(class_counts.values())
            need = int(np.ceil(n * (half / ci_width) ** 2))
            out.append(
                f"site set too small for the CI asked: the accuracy CI is +/-{100 * half:.1f} "
                f"points, wider than +/-{100 * ci_width:.1f}; about {need} films would be needed"
            )
    return out
