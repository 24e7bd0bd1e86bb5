"""Which films may a lung model segment? The views it supports, checked per film.

A lung model's card lists the `views` it was trained on (frontal only when it says
nothing). A film the screening net (`cxrkit.guard.film_view`) calls lateral is skipped by
a frontal-only model with a one-line reason, never given a silent empty or wrong mask.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cxrkit.guard.view import film_view, supported_views, view_skip_reason


def skip_reason(film: np.ndarray, lung: Any, screen: Any = None) -> tuple[str, str, float]:
    """(reason, view, p_lateral) for one film (float (H, W) in [0, 1]): reason is '' when
    `lung` supports the film's view. A model that supports both views skips the check
    (view '' and p_lateral 0: not judged). `screen` is a `PolarityModel` (default shipped)."""
    views = supported_views(lung.card)
    if "lateral" in views and "frontal" in views:
        return "", "", 0.0
    view, p_lateral = film_view(film, screen)
    return view_skip_reason(view, p_lateral, views), view, p_lateral
