"""Named crops applied to a decoded film before it is resized (`crop: lungs` in configs).

'lungs' crops to the lung box found by the shipped lung U-Net. That model lives in
`cxrkit.segment`, later in the package flow, so it is imported lazily, only when asked for.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

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
    from cxrkit.segment.model import default_model_path, file_id

    return f"lungs{LUNG_MARGIN:g}-notta-{file_id(str(default_model_path()))}"


def apply_crop(image: np.ndarray, crop: str | None) -> np.ndarray:
    """The film cropped as named: None -> unchanged; 'lungs' -> lung box plus 10% margin.

    The box comes from the shipped lung model without its flip-TTA (half the compute; the
    box barely moves). When the lung mask covers under 2% of the film (not a chest film,
    or a failed segmentation), the whole film is returned.
    """
    check_crop(crop)
    if crop is None:
        return image
    from cxrkit.segment.crop import crop_to_lungs
    from cxrkit.segment.infer import segment_lungs

    mask = segment_lungs(image, _box_model())
    if mask.mean() < MIN_LUNG_FRACTION:
        return image
    return np.ascontiguousarray(crop_to_lungs(image, mask, margin=LUNG_MARGIN))


@functools.lru_cache(maxsize=1)
def _box_model() -> Any:
    """The shipped lung model with flip-TTA off (shares its weights)."""
    import dataclasses

    from cxrkit.segment.infer import load_lung_model

    model = load_lung_model()
    return dataclasses.replace(model, card={**model.card, "tta_hflip": False})
