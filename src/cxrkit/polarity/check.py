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
        image: a file (PNG, JPEG, DICOM) or an array: float in [0, 1], uint8 / uint16
            (scaled by the type's maximum) or RGB(A) (channels averaged).
        model: a `PolarityModel`; None uses the one shipped with cxrkit (offline).

    Returns:
        `polarity`, its `probability` (given a chest film), the `not_cxr` probability and
        `inverted` (a negative film the model is sure about).

    Raises:
        ImageReadError: the file cannot be read, or the array is not a finite film in
            [0, 1] at least 16 px a side.
        ModelOutputError: the model's probabilities are not finite numbers in [0, 1].
    """
    from cxrkit.io import read_image
    from cxrkit.io.film import as_film
    from cxrkit.polarity.predict import polarity_row

    # an array goes through the film contract: a NaN film is an error, never a label
    is_path = isinstance(image, str | os.PathLike)
    film = read_image(image)[0] if is_path else as_film(image, "image")
    model = load_polarity_model() if model is None else model
    return polarity_row(model.image_probs([film])[0], model)
