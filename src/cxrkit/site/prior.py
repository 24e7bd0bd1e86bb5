"""Class priors: the one a model's probabilities assume, and a site's, estimated by EM.

EM of Saerens, Latinne & Decaestecker (Neural Computation 14, 2002): starting from the
training prior, alternately re-weight each film's posterior by site/train prior ratios and
set the site prior to the mean re-weighted posterior, until it stops moving.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.card.calibration import prior_shift


@dataclass
class PriorEstimate:
    """EM result: the site prior, the iterations run and whether it converged."""

    site: np.ndarray
    iterations: int
    converged: bool


def em_prior(
    probs: np.ndarray, train_prior: np.ndarray, max_iter: int = 1000, tol: float = 1e-8
) -> PriorEstimate:
    """Site class prior from softmax probabilities (N, C) made under `train_prior`."""
    p = np.asarray(probs, dtype=np.float64)
    train = np.asarray(train_prior, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] == 0 or train.shape != (p.shape[1],):
        raise ValueError(f"need probabilities (N, {train.size}) with N > 0, got {p.shape}")
    site = train.copy()
    for it in range(1, max_iter + 1):
        new = prior_shift(p, train, site).mean(axis=0)
        new = np.clip(new, 1e-6, None)
        new /= new.sum()
        if np.max(np.abs(new - site)) < tol:
            return PriorEstimate(new, it, True)
        site = new
    return PriorEstimate(site, max_iter, False)


def training_prior(card: ModelCard | dict[str, Any]) -> tuple[np.ndarray, str]:
    """The class prior the model's probabilities assume, and where that figure comes from.

    Order: the card's `training_prior`; uniform when training balanced the classes
    (`balance: loss` or `sampler` makes the network learn as if classes were equal);
    `training.class_counts`; else uniform (said so in the returned note).
    """
    card = ModelCard.from_dict(card)
    names = list(card.class_names)
    k = len(names)
    stored = card.provenance.training_prior
    if isinstance(stored, Mapping) and stored.get("prior") is not None:
        return _normalised(stored["prior"], k), str(stored.get("source", "card"))
    training = card.provenance.training
    balance = (training.get("config") or {}).get("balance")
    if balance in ("loss", "sampler"):
        return np.full(k, 1.0 / k), f"uniform: trained with class balancing (balance: {balance})"
    counts = training.get("class_counts")
    if isinstance(counts, Mapping) and all(c in counts for c in names):
        return _normalised([counts[c] for c in names], k), "training class counts in the card"
    return np.full(k, 1.0 / k), "uniform: the card records no training class prior"


def _normalised(values: Any, k: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.shape != (k,) or np.any(v < 0) or v.sum() <= 0:
        raise ValueError(f"a class prior needs {k} non-negative values, got {values!r}")
    return v / v.sum()
