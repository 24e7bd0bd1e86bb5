"""What `cxr calibrate` writes: the fitted change only when the resamples show it earns it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrkit.card import Calibration, ModelCard
from cxrkit.site.calibrate import (
    card_decisions,
    card_threshold,
    fit_site,
    site_decisions,
    site_map,
)
from cxrkit.site.resample import DEFAULT_RESAMPLES, guard_decision, resampled_gain

NONE_MAP = {"method": "none", "params": {}}


@dataclass
class GuardedFit:
    """The fit on all the site's films, the resampled evidence and what is written.

    `decision` is ``threshold`` (fitted map and threshold written), ``probabilities``
    (fitted map written, the model's decisions carried through it unchanged) or ``kept``
    (the card's map and threshold as they were).
    """

    decision: str
    fitted_calibration: dict[str, Any]
    fitted_threshold: float
    calibration: dict[str, Any]
    threshold: float
    resampled: dict[str, Any]

    @property
    def changed(self) -> bool:
        """Whether anything the card decides with is new."""
        return self.decision != "kept"


def guarded_fit(
    y: np.ndarray,
    raw_probs: np.ndarray,
    groups: np.ndarray,
    card: ModelCard | dict[str, Any],
    method: str,
    probabilities: str,
    resamples: int = DEFAULT_RESAMPLES,
    seed: int = 0,
) -> GuardedFit:
    """Fit the site's map and threshold, resample its gain, keep the model unless it earns it."""
    card = ModelCard.from_dict(card)
    cal, (fitted_t,) = fit_site(y, raw_probs, card, method, probabilities)
    evidence = resampled_gain(y, raw_probs, groups, card, method, probabilities, resamples, seed)
    summary = evidence.summary()
    decision = guard_decision(summary, method, probabilities)
    if decision == "threshold":
        return GuardedFit(decision, cal, fitted_t, cal, fitted_t, summary)
    if decision == "probabilities":
        carried = carried_threshold(raw_probs, card, cal)
        if carried is not None:
            return GuardedFit(decision, cal, fitted_t, cal, carried, summary)
    old_cal = dict(card.calibration.probability or NONE_MAP)
    return GuardedFit("kept", cal, fitted_t, old_cal, card_threshold(card), summary)


def carried_threshold(
    raw_probs: np.ndarray, card: ModelCard | dict[str, Any], cal: dict[str, Any]
) -> float | None:
    """The threshold under map `cal` that labels every film as the card does now, or None.

    The card's decision boundary is found on the network's own probability (bisection in
    log-odds, all maps being monotone) and sent through `cal`; None when a film of the set
    would change label (a map that is flat or reversed there).
    """
    card = ModelCard.from_dict(card)
    decision = card.require_decision()
    _, old_pred = card_decisions(raw_probs, card)

    def through(z: float, which: Calibration) -> np.ndarray:
        """The binary probability row of log-odds `z` sent through map `which`."""
        p1 = 1.0 / (1.0 + np.exp(-z))
        return which.apply(np.array([[1.0 - p1, p1]]), card.task)[0]

    def called(z: float) -> bool:
        """Whether the card calls log-odds `z` positive."""
        return decision.index(through(z, card.calibration)) == 1

    lo, hi = -40.0, 40.0
    if not called(hi) or called(lo):
        return None
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if called(mid) else (mid, hi)
    new_t = float(through(hi, site_map(cal))[1])
    _, new_pred = site_decisions(raw_probs, card, cal, new_t)
    return new_t if np.array_equal(new_pred, old_pred) else None
