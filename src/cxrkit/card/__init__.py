"""The model card: one typed, validated schema for every model file cxrkit writes.

`ModelCard.from_dict(json, source=path)` parses (and migrates) a card once when a file is
read; `card.decision` is the one rule from probabilities to labels; `card.to_dict()` is
what gets written. The `card` module is the only code that reads a card's JSON keys.
"""

from cxrkit.card.calibration import Calibration, CalibrationError
from cxrkit.card.decision import DEFAULT_THRESHOLD, Decision, DecisionError, is_probability_row
from cxrkit.card.schema import (
    CARD_KEY,
    CLASSIFIER_TASKS,
    FORMAT_HISTORY,
    FORMAT_VERSION,
    CardError,
    ModelCard,
    Network,
    Preprocessing,
    Provenance,
    Screening,
    migrate,
)

__all__ = [
    "CARD_KEY",
    "CLASSIFIER_TASKS",
    "DEFAULT_THRESHOLD",
    "FORMAT_HISTORY",
    "FORMAT_VERSION",
    "Calibration",
    "CalibrationError",
    "CardError",
    "Decision",
    "DecisionError",
    "ModelCard",
    "Network",
    "Preprocessing",
    "Provenance",
    "Screening",
    "is_probability_row",
    "migrate",
]
