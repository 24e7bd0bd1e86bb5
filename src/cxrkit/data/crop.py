"""Named crops applied to a decoded film before it is resized (`crop: lungs` in configs).

'lungs' crops to the lung box found by the shipped lung U-Net. That model lives in
`cxrkit.segment`, later in the package flow, so it is imported lazily, only when asked for.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

log = logging.getLogger("cxrkit")

CROPS: tuple[str | None, ...] = (None, "lungs")
LUNG_MARGIN = 0.1
MIN_LUNG_FRACTION = 0.02  # a smaller mask is a failed segmentation: keep the whole film


def check_crop(crop: str | None) -> None:
    """Raise ValueError for a crop name other than None or 'lungs'."""
    if crop not in CROPS:
        raise ValueError(f"crop must be one of {', '.join(map(str, CROPS))}, not {crop!r}")


def crop_key(crop: str | None) -> str:
    """A cache-key part naming the crop and the model that makes it ('' for no crop)."""
    check_crop(crop)
    if crop is None:
        return ""
    from cxrkit.polarity.model import DEFAULT_MODEL as SCREEN_MODEL
    from cxrkit.segment.model import default_model_path, file_id

    # the screening net decides which films are lateral (kept whole), so it is in the key
    lungs, screen = file_id(str(default_model_path())), file_id(str(SCREEN_MODEL))
    return f"lungs{LUNG_MARGIN:g}-notta-{lungs}-view-{screen}"


def apply_crop(image: np.ndarray, crop: str | None) -> np.ndarray:
    """The film cropped as named: None -> unchanged; 'lungs' -> lung box plus 10% margin.

    The box comes from the shipped lung model without its flip-TTA (half the compute; the
    box barely moves). The whole film is returned, with a logged warning, when the film
    is of a view the lung model does not support (a lateral film, judged by the shipped
    screening net) or when the lung mask covers under 2% of the film (not a chest film, or
    a failed segmentation): never a crop to an empty or wrong mask.
    """
    check_crop(crop)
    if crop is None:
        return image
    from cxrkit.segment.crop import crop_to_lungs
    from cxrkit.segment.infer import segment_lungs
    from cxrkit.segment.views import skip_reason

    model = _box_model()
    reason, _view, _p = skip_reason(image, model)
    if reason:
        log.warning("crop lungs: kept the full film: %s", reason)
        return image
    mask = segment_lungs(image, model)
    if mask.mean() < MIN_LUNG_FRACTION:
        log.warning(
            "crop lungs: kept the full film: the lung mask covers %.1f%% of it (under %g%%)",
            100 * mask.mean(),
            100 * MIN_LUNG_FRACTION,
        )
        return image
    return np.ascontiguousarray(crop_to_lungs(image, mask, margin=LUNG_MARGIN))


@functools.lru_cache(maxsize=1)
def _box_model() -> Any:
    """The shipped lung model with flip-TTA off (shares its weights)."""
    import dataclasses

    from cxrkit.segment.infer import load_lung_model

    model = load_lung_model()
    return dataclasses.replace(model, card={**model.card, "tta_hflip": False})
