"""Fit a site's probability calibration and operating threshold from its labelled films."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from cxrkit.card import Calibration, Decision, ModelCard
from cxrkit.card.calibration import PROBABILITY_METHODS, binary_logit, sigmoid
from cxrkit.errors import CxrkitError
from cxrkit.evaluate.thresholds import choose_threshold, parse_threshold_method

BAGS = 25  # bootstrap resamples whose thresholds' median is the site threshold


def check_methods(method: str, probabilities: str) -> None:
    """Refuse an unknown threshold method or probability calibration before any work."""
    parse_threshold_method(method)
    if probabilities not in PROBABILITY_METHODS:
        raise CxrkitError(
            f"probabilities={probabilities}: use one of {', '.join(PROBABILITY_METHODS)}"
        )


def fit_probability_calibration(y: np.ndarray, probs: np.ndarray, method: str) -> dict[str, Any]:
    """A card `probability_calibration` entry fitted on binary labels and network probabilities."""
    y = np.asarray(y, dtype=np.int64)
    p = np.asarray(probs, dtype=np.float64)
    if method == "none":
        return {"method": "none", "params": {}}
    if method == "temperature":
        return {"method": "temperature", "params": {"temperature": _fit_temperature(y, p)}}
    if method == "platt":
        from sklearn.linear_model import LogisticRegression

        x = np.clip(binary_logit(p), -50.0, 50.0)[:, None]
        lr = LogisticRegression(C=100.0).fit(x, y)  # mild L2: stays finite on separable sets
        return {
            "method": "platt",
            "params": {"a": float(lr.coef_[0, 0]), "b": float(lr.intercept_[0])},
        }
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(p[:, 1], y)
        xs, ys = iso.X_thresholds_, iso.y_thresholds_
        return {
            "method": "isotonic",
            "params": {"x": [float(v) for v in xs], "y": [float(v) for v in ys]},
        }
    raise CxrkitError(f"unknown probability calibration {method!r}")


def _fit_temperature(y: np.ndarray, p: np.ndarray) -> float:
    """The temperature T minimising the log-loss of softmax(log p / T) (T in [0.05, 20])."""
    from scipy.optimize import minimize_scalar

    logp = np.log(np.clip(p, 1e-12, 1.0))
    rows = np.arange(len(y))

    def nll(log_t: float) -> float:
        z = logp / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        lse = np.log(np.exp(z).sum(axis=1))
        return float(np.mean(lse - z[rows, y]))

    res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(res.x))


def fit_site(
    y: np.ndarray,
    raw_probs: np.ndarray,
    card: ModelCard | dict[str, Any],
    method: str,
    probabilities: str,
) -> tuple[dict[str, Any], list[float]]:
    """Calibration map on the network's probabilities, then the threshold on the calibrated ones.

    The threshold is `robust_threshold`'s: it does not chase the extremes of a small set.
    """
    card = ModelCard.from_dict(card)
    cal = fit_probability_calibration(y, raw_probs, probabilities)
    calibrated = site_map(cal).apply(raw_probs, card.task)
    return cal, [robust_threshold(y, calibrated[:, 1], method)]


def robust_threshold(y: np.ndarray, scores: np.ndarray, method: str, bags: int = BAGS) -> float:
    """A threshold for `method` that neither sits on one film's score nor follows a few films.

    Each cut is placed halfway, in log-odds, between the film it admits and the next
    lower score (never at the edge of the site's score range), and the result is the
    median, in log-odds, of that cut over `bags` class-stratified bootstrap resamples of
    the films (seeded: the same films give the same threshold). `sensitivity:X` is a
    constraint on these films and takes the single interior cut that meets it.
    """
    y = np.asarray(y, dtype=np.int64)
    s = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(0)
    by_class = [np.flatnonzero(y == c) for c in (0, 1)]
    cuts = [_interior_logit(y, s, method)]
    if parse_threshold_method(method)[0] == "sensitivity":
        bags = 1  # a constraint on these films: a median could fall short of the target
    for _ in range(max(bags - 1, 0)):
        pick = np.concatenate([rng.choice(idx, size=idx.size, replace=True) for idx in by_class])
        cuts.append(_interior_logit(y[pick], s[pick], method))
    return float(sigmoid(np.asarray(np.median(cuts))))


def _interior_logit(y: np.ndarray, s: np.ndarray, method: str) -> float:
    """`choose_threshold`'s cut moved halfway (log-odds) to the next lower score."""
    eps = 1e-12
    z = np.log(np.clip(s, eps, 1.0)) - np.log(np.clip(1.0 - s, eps, 1.0))
    t = choose_threshold(y, s, method=method)
    zt = float(np.log(max(t, eps)) - np.log(max(1.0 - t, eps)))
    if parse_threshold_method(method)[0] == "midpoint":
        return zt  # already between the classes' medians
    below = z[s < t]
    if below.size == 0:
        return zt
    return 0.5 * (zt + float(below.max()))


def card_threshold(card: ModelCard | dict[str, Any]) -> float:
    """The binary card's operating threshold (its decision's single threshold)."""
    return ModelCard.from_dict(card).require_decision().threshold


def card_decisions(
    raw_probs: np.ndarray, card: ModelCard | dict[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """The card's probabilities (its calibration on the network's own) and its decided class
    indices (binary: 0/1), by the card's `Decision`."""
    card = ModelCard.from_dict(card)
    probs = card.calibration.apply(raw_probs, card.task)
    return probs, card.require_decision().indices(probs)


def site_decisions(
    raw_probs: np.ndarray,
    card: ModelCard | dict[str, Any],
    cal: Mapping[str, Any],
    threshold: float,
) -> tuple[np.ndarray, np.ndarray]:
    """`card_decisions` with a fitted site map `cal` and `threshold` in the card's place."""
    card = ModelCard.from_dict(card)
    probs = site_map(cal).apply(raw_probs, card.task)
    return probs, site_decision(card, threshold).indices(probs)


def site_decision(card: ModelCard, threshold: float) -> Decision:
    """The card's decision rule with the site's `threshold`."""
    return card.require_decision().with_thresholds([threshold])


def site_map(cal: Mapping[str, Any]) -> Calibration:
    """A fitted site map as a card calibration: no prior shift (the site's labels replace it)."""
    return Calibration(probability=dict(cal))


def site_card(card: ModelCard | dict[str, Any], cal: Mapping[str, Any]) -> ModelCard:
    """The card with `cal` as its probability map and no prior shift (labels replace it)."""
    return ModelCard.from_dict(card).merged(probability_calibration=dict(cal), prior_shift=None)
