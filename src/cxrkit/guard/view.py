"""Frontal or lateral? The screening net's view head, for the steps that only know frontals.

`film_view` judges one decoded film; `view_warning` is the text a classifier trained on
frontal films adds to a lateral film's output; `supported_views` reads the `views` a model
card declares (frontal only when the card says nothing); `view_skip_reason` is the
one-line reason a lateral film is skipped by a frontal-only step (segmentation, lung crop).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from cxrkit.card import ModelCard

VIEWS: tuple[str, ...] = ("frontal", "lateral")
DEFAULT_VIEWS: tuple[str, ...] = ("frontal",)


def film_view(image: np.ndarray, model: Any = None) -> tuple[str, float]:
    """('frontal' | 'lateral', p(lateral)) of one film (float (H, W) in [0, 1]) by the
    shipped screening net (or `model`, a `PolarityModel`)."""
    from cxrkit.polarity.model import load_polarity_model, view_of

    model = model or load_polarity_model()
    return view_of(model.probs(model.prepare(np.asarray(image, np.float32))[None])[0], model)


def supported_views(card: ModelCard) -> tuple[str, ...]:
    """The views a model card declares in `views`; ('frontal',) when it has none (the
    card checked them when it was read)."""
    return card.views


def view_warning(view: str, trained_views: Sequence[str] = DEFAULT_VIEWS) -> str:
    """'lateral view: this model was trained on frontal films' when `view` is not among
    `trained_views`; '' when it is (or when `view` is empty: not judged)."""
    if not view or view in trained_views:
        return ""
    return f"{view} view: this model was trained on {' and '.join(trained_views)} films"


def view_skip_reason(view: str, p_lateral: float, supported: Sequence[str]) -> str:
    """One line saying why a film of `view` is skipped by a model for `supported` views;
    '' when the view is supported."""
    if view in supported:
        return ""
    return (
        f"{view} view (p_lateral={p_lateral:.2f}): the lung model supports "
        f"{', '.join(supported)} films only"
    )
