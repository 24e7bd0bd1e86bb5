"""The card's probability adjustments: see `cxrkit.card.calibration` (their one home).

`apply_card_calibration(probs, card)` stays as a short way to apply a card's maps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.card.calibration import (
    PROBABILITY_METHODS,
    binary_logit,
    prior_shift,
    probability_map,
    sigmoid,
)

__all__ = [
    "PROBABILITY_METHODS",
    "apply_card_calibration",
    "binary_logit",
    "has_card_calibration",
    "prior_shift",
    "probability_map",
    "sigmoid",
]


def has_card_calibration(card: ModelCard | dict[str, Any]) -> bool:
    """Whether the card asks for any probability adjustment."""
    return ModelCard.from_dict(card).calibration.active


def apply_card_calibration(probs: np.ndarray, card: ModelCard | dict[str, Any]) -> np.ndarray:
    """The card's calibration, then its prior shift, applied to (N, C) model probabilities."""
    card = ModelCard.from_dict(card)
    return card.calibration.apply(probs, card.task)
