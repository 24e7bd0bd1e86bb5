"""Does a site calibration earn its change? Repeated patient-grouped halves of the site set.

Each resample splits the site's patients at random into two halves (stratified by class,
never one patient on both sides), fits the calibration on one half exactly as
`cxr calibrate` does on the whole set, and scores the other half twice: with the model as
given and with the fitted change. The distribution of the difference in the metric that
`--method` optimises is the evidence the guard reads (`guard_decision`):

- ``youden`` / ``midpoint``: Youden's J (sensitivity + specificity - 1), higher is better;
- ``cost:RATIO``: expected cost per film, (RATIO * misses + false alarms) / films, as a
  saving (old cost - new cost), higher is better;
- ``sensitivity:X``: a constraint the user asked for, applied whatever the resamples say;
  its held-out sensitivity interval is reported.

Rule (documented in docs/SITE.md), a one-standard-error rule: the new threshold is
written only when the mean gain over the resamples exceeds one standard deviation of the
resampled gain (mean - sd > 0). Otherwise the model's own decisions are kept; a new
probability map is still written when the held-out ECE reduction passes the same rule and
the map is monotone (temperature, Platt with a positive slope), with the old threshold
carried through it so that no film's label changes. The rule was chosen on synthetic
sites (binormal scores, AUC 0.99, 100 films, shifts of 0 to 3 log-odds), not on real films:
against the stricter "5th percentile above zero" it kept the same never-apply record
without a shift and took +3.9 instead of +2.9 accuracy points at a shift of 1 log-odds.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.errors import CxrkitError
from cxrkit.evaluate.calibration import reliability_bins
from cxrkit.evaluate.thresholds import parse_threshold_method
from cxrkit.site.calibrate import card_decisions, fit_site, site_decisions

DEFAULT_RESAMPLES = 200
INTERVAL = (5.0, 95.0)  # percentiles of the resampled gain: a 90 % interval
OBJECTIVE_NAMES = {
    "youden": "Youden's J",
    "midpoint": "Youden's J",
    "cost": "expected cost saved per film",
    "sensitivity": "sensitivity",
}


def patient_halves(
    y: np.ndarray, groups: np.ndarray, resamples: int, seed: int = 0
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """`resamples` random (fit, held-out) halves of the films, patient-grouped and stratified.

    A half that lacks a class is skipped (the next seed is tried), so every yielded pair
    can fit and score a threshold; raises when too few patients make that impossible.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    y = np.asarray(y)
    groups = np.asarray(groups)
    if len(np.unique(groups)) < 4:
        raise CxrkitError("the site set has fewer than 4 patients: too few to resample halves")
    made, tries = 0, 0
    while made < resamples:
        if tries >= 20 * resamples + 20:
            raise CxrkitError(
                "could not split the site's patients into halves that both hold both classes"
            )
        splitter = StratifiedGroupKFold(n_splits=2, shuffle=True, random_state=seed + tries)
        tries += 1
        fit_idx, held_idx = next(splitter.split(np.zeros(len(y)), y, groups))
        if len(np.unique(y[fit_idx])) < 2 or len(np.unique(y[held_idx])) < 2:
            continue
        made += 1
        yield fit_idx, held_idx


def decision_objective(y: np.ndarray, pred: np.ndarray, method: str) -> float:
    """The figure `method` optimises for decisions `pred` on labels `y` (higher is better)."""
    name, value = parse_threshold_method(method)
    y = np.asarray(y)
    pred = np.asarray(pred)
    pos, neg = y == 1, y == 0
    sens = float(np.mean(pred[pos] == 1)) if pos.any() else 0.0
    spec = float(np.mean(pred[neg] == 0)) if neg.any() else 0.0
    if name == "cost":
        misses = float(np.sum(pos & (pred == 0)))
        alarms = float(np.sum(neg & (pred == 1)))
        return -(value * misses + alarms) / max(len(y), 1)
    if name == "sensitivity":
        return sens
    return sens + spec - 1.0


def positive_ece(y: np.ndarray, probs: np.ndarray) -> float:
    """ECE of the positive-class probability against the label (10 equal-width bins)."""
    return float(reliability_bins(np.asarray(probs)[:, 1], np.asarray(y))["ece"])


@dataclass
class GainEstimate:
    """What the resamples say: per-resample changes on the held-out halves."""

    objective: str
    gain: np.ndarray  # objective(new) - objective(old)
    accuracy_change: np.ndarray
    ece_reduction: np.ndarray  # ECE(old probabilities) - ECE(new probabilities)
    held_out_sensitivity: np.ndarray  # of the fitted change
    fit_films: int

    def summary(self) -> dict[str, Any]:
        """JSON-ready figures: mean, spread, 90 % interval and P(hurt) of each change."""

        def describe(v: np.ndarray) -> dict[str, Any]:
            lo, hi = np.percentile(v, INTERVAL)
            return {
                "mean": float(np.mean(v)),
                "sd": float(np.std(v, ddof=1)) if len(v) > 1 else 0.0,
                "interval": [float(lo), float(hi)],
            }

        return {
            "resamples": int(len(self.gain)),
            "films_fitted_per_resample": self.fit_films,
            "objective": self.objective,
            "interval_percentiles": list(INTERVAL),
            "gain": describe(self.gain),
            "probability_hurt": float(np.mean(self.gain < 0)),
            "accuracy_change": describe(self.accuracy_change),
            "accuracy_probability_hurt": float(np.mean(self.accuracy_change < 0)),
            "ece_reduction": describe(self.ece_reduction),
            "held_out_sensitivity": describe(self.held_out_sensitivity),
        }


def resampled_gain(
    y: np.ndarray,
    raw_probs: np.ndarray,
    groups: np.ndarray,
    card: ModelCard | dict[str, Any],
    method: str,
    probabilities: str,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> GainEstimate:
    """Fit on one patient half, score the other, `resamples` times (see the module doc)."""
    card = ModelCard.from_dict(card)
    if resamples < 1:
        raise CxrkitError(f"resamples={resamples}: the guard needs at least 1 resample")
    name, _ = parse_threshold_method(method)
    old_probs, old_pred = card_decisions(raw_probs, card)
    gain, acc, ece, sens = [], [], [], []
    fit_sizes = []
    for fit_idx, held in patient_halves(y, groups, resamples, seed):
        cal, th = fit_site(y[fit_idx], raw_probs[fit_idx], card, method, probabilities)
        new_probs, new_pred = site_decisions(raw_probs[held], card, cal, th[0])
        yh, old = y[held], old_pred[held]
        gain.append(decision_objective(yh, new_pred, method) - decision_objective(yh, old, method))
        acc.append(float(np.mean(new_pred == yh) - np.mean(old == yh)))
        ece.append(positive_ece(yh, old_probs[held]) - positive_ece(yh, new_probs))
        sens.append(float(np.mean(new_pred[yh == 1] == 1)))
        fit_sizes.append(len(fit_idx))
    return GainEstimate(
        objective=OBJECTIVE_NAMES[name],
        gain=np.asarray(gain),
        accuracy_change=np.asarray(acc),
        ece_reduction=np.asarray(ece),
        held_out_sensitivity=np.asarray(sens),
        fit_films=int(np.median(fit_sizes)),
    )


def beyond_noise(figure: dict[str, Any]) -> bool:
    """The one-standard-error rule: the mean change exceeds its resampled spread."""
    return figure["mean"] - figure["sd"] > 0


def guard_decision(summary: dict[str, Any], method: str, probabilities: str) -> str:
    """``threshold`` (write the fitted change), ``probabilities`` (new map, same decisions)
    or ``kept`` (the model as given), by the rule in the module doc."""
    name, _ = parse_threshold_method(method)
    if name == "sensitivity" or beyond_noise(summary["gain"]):
        return "threshold"
    if probabilities in ("temperature", "platt") and beyond_noise(summary["ece_reduction"]):
        return "probabilities"
    return "kept"
