"""Deprecated path, kept for one release: use `cxrkit.classifier.screen`."""

from cxrkit.classifier.screen import (
    DEFAULT_VIEWS,
    LATERAL_WARNING,
    NOT_SCREENED,
    Screening,
    one_torch_thread,
    screen_films,
    screen_image,
    screen_input,
    screen_model,
    training_views,
)

__all__ = [
    "DEFAULT_VIEWS",
    "LATERAL_WARNING",
    "NOT_SCREENED",
    "Screening",
    "one_torch_thread",
    "screen_films",
    "screen_image",
    "screen_input",
    "screen_model",
    "training_views",
]
