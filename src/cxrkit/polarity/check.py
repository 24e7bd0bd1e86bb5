"""Polarity of one film (a path or an array) with the shipped polarity model."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from cxrkit.polarity.model import PolarityModel, load_polarity_model


def check_polarity(
    image: str | os.PathLike[str] | np.ndarray, model: PolarityModel | None = None
) -> dict[str, Any]:
    """Is a film displayed as read (`positive`) or inverted (`negative`), and is it a chest film?

    Args:
        image: a file (PNG, JPEG, DICOM) or a 2-D array: float in [0, 1], or uint8 / uint16
            scaled by the type's maximum.
        model: a `PolarityModel`; None uses the one shipped with cxrkit (offline).

    Returns:
        `polarity`, its `probability` (given a chest film), the `not_cxr` probability and
        `inverted` (a negative film the model is sure about).

    Raises:
        ImageReadError: the file cannot be read, or the array is not a finite 2-D film.
    """
    from cxrkit.io.contract import check_film
    from cxrkit.io.meta import DEFAULT_MAX_PIXELS
    from cxrkit.polarity.predict import polarity_row
    from cxrkit.segment.infer import as_film

    name = os.fspath(image) if isinstance(image, str | os.PathLike) else "image"
    try:
        film = as_film(image)
    except ValueError as exc:
        from cxrkit.errors import CorruptImageError

        raise CorruptImageError(name, str(exc)) from exc
    film = check_film(film, name, DEFAULT_MAX_PIXELS)  # a NaN film is an error, never a label
    model = load_polarity_model() if model is None else model
    return polarity_row(model.image_probs([film])[0], model)
