"""Deprecated path, kept for one release: use `cxrkit.evaluate.model`."""

from cxrkit.evaluate.model import (
    TRANSFER_FILE,
    external_headlines,
    score_external,
)

__all__ = [
    "TRANSFER_FILE",
    "external_headlines",
    "score_external",
]
