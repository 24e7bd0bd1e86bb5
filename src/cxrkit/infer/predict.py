"""Deprecated path, kept for one release: use `cxrkit.classifier.api`."""

from cxrkit.classifier.api import (
    label_row,
    predict,
    predict_batches,
)

__all__ = [
    "label_row",
    "predict",
    "predict_batches",
]
