"""Deprecated path, kept for one release: use `cxrkit.evaluate.model`."""

from cxrkit.evaluate.model import (
    evaluate_model,
)

__all__ = [
    "evaluate_model",
]
