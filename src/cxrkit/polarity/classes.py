"""The polarity network's output columns, importable without torch (the net is in `net`)."""

from __future__ import annotations

CLASSES: tuple[str, ...] = ("positive", "negative", "not_cxr")
POSITIVE, NEGATIVE, NOT_CXR = range(3)
LATERAL = 3  # column of the view logit / p(lateral) after the three class columns
VIEWS: tuple[str, ...] = ("frontal", "lateral")
