"""The one lung crop: named crops applied to a decoded film before it is resized.

`crop: lungs` in a config or card crops to the lung box found by the shipped lung U-Net.
`FilmCrop(name)` is that crop as one callable carrying its decode-cache key (`.key`) and
its box in the film (`.box`), so datasets (`CXRDataset`), decode caches (`DecodeCache`
takes the crop object), `Classifier.prepare` and the heat-map placement all use the same
crop. The crop geometry (`lung_bbox`, `crop_to_lungs`) is plain numpy; the lung and
screening models are loaded on first use, only when a lung crop is asked for.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np

log = logging.getLogger("cxrkit")

CROPS: tuple[str | None, ...] = (None, "lungs")
LUNG_MARGIN = 0.1
MIN_LUNG_FRACTION = 0.02  # a smaller mask is a failed segmentation: keep the whole film

#: (top, bottom, left, right) in film pixels; bottom and right exclusive.
Box = tuple[int, int, int, int]


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


def lung_bbox(mask: np.ndarray, margin: float = 0.1) -> Box | None:
    """(top, bottom, left, right) of the mask's box grown by `margin` of its height/width.

    Bottom and right are exclusive; the box is clipped to the image. None for an empty mask.
    """
    m = np.asarray(mask, dtype=bool)
    if m.ndim != 2:
        raise ValueError(f"mask must be 2-D, got shape {m.shape}")
    if margin < 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
    if rows.size == 0:
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    dy, dx = round(margin * (bottom - top)), round(margin * (right - left))
    height, width = m.shape
    return (
        int(max(0, top - dy)),
        int(min(height, bottom + dy)),
        int(max(0, left - dx)),
        int(min(width, right + dx)),
    )


def lung_box_in_image(image_shape: tuple[int, ...], mask: np.ndarray, margin: float = 0.1) -> Box:
    """The lung box of `mask` (`lung_bbox`) in the pixels of an image of `image_shape`.

    `mask` may have another size than the image (e.g. a mask computed on a thumbnail): its
    box is scaled to the image. The whole image when the mask is empty.
    """
    ih, iw = image_shape[:2]
    box = lung_bbox(mask, margin)
    if box is None:
        return 0, ih, 0, iw
    top, bottom, left, right = box
    mh, mw = np.shape(mask)
    if (mh, mw) != (ih, iw):
        top, bottom = int(np.floor(top * ih / mh)), int(np.ceil(bottom * ih / mh))
        left, right = int(np.floor(left * iw / mw)), int(np.ceil(right * iw / mw))
    return top, bottom, left, right


def crop_to_lungs(image: np.ndarray, mask: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """The part of `image` inside the lung box (`lung_box_in_image`); the whole image if
    `mask` is empty. Returns a view into `image` (copy it before writing)."""
    img = np.asarray(image)
    if img.ndim < 2:
        raise ValueError(f"image must be at least 2-D, got shape {img.shape}")
    top, bottom, left, right = lung_box_in_image(img.shape, mask, margin)
    return img[top:bottom, left:right]


def crop_with_box(image: np.ndarray, crop: str | None) -> tuple[np.ndarray, Box]:
    """(the film cropped as named, the crop's box in the film).

    None -> the film itself; 'lungs' -> the lung box plus a 10 % margin, from the shipped
    lung model without its flip-TTA (half the compute; the box barely moves). The whole
    film is kept, with a logged warning, when it is of a view the lung model does not
    support (a lateral film, judged by the shipped screening net) or when the lung mask
    covers under 2 % of it (not a chest film, or a failed segmentation): never a crop to
    an empty or wrong mask.
    """
    check_crop(crop)
    h, w = np.shape(image)[:2]
    whole: Box = (0, h, 0, w)
    if crop is None:
        return image, whole
    from cxrkit.segment.infer import segment_lungs
    from cxrkit.segment.views import skip_reason

    model = _box_model()
    reason, _view, _p = skip_reason(image, model)
    if reason:
        log.warning("crop lungs: kept the full film: %s", reason)
        return image, whole
    mask = segment_lungs(image, model, check_view=False)  # checked just above
    if mask.mean() < MIN_LUNG_FRACTION:
        log.warning(
            "crop lungs: kept the full film: the lung mask covers %.1f%% of it (under %g%%)",
            100 * mask.mean(),
            100 * MIN_LUNG_FRACTION,
        )
        return image, whole
    top, bottom, left, right = lung_box_in_image(np.shape(image), mask, LUNG_MARGIN)
    return np.ascontiguousarray(image[top:bottom, left:right]), (top, bottom, left, right)


def apply_crop(image: np.ndarray, crop: str | None) -> np.ndarray:
    """The film cropped as named (`crop_with_box` without the box)."""
    return crop_with_box(image, crop)[0]


@dataclass(frozen=True)
class FilmCrop:
    """The crop named by a model card's `preprocessing.crop` (None: the whole film)."""

    name: str | None = None

    def __post_init__(self) -> None:
        check_crop(self.name)

    @property
    def key(self) -> str:
        """Cache-key part naming the crop and the model that makes it ('' for no crop)."""
        return crop_key(self.name)

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The cropped film (the film itself when there is no crop)."""
        return apply_crop(image, self.name)

    def box(self, image: np.ndarray) -> tuple[np.ndarray, Box]:
        """(cropped film, its box in `image`); the box of no crop is the whole film."""
        return crop_with_box(image, self.name)


def as_crop(crop: str | FilmCrop | None) -> FilmCrop:
    """A `FilmCrop` from a crop name (None, 'lungs') or a `FilmCrop` itself."""
    return crop if isinstance(crop, FilmCrop) else FilmCrop(crop)


@functools.lru_cache(maxsize=1)
def _box_model() -> Any:
    """The shipped lung model with flip-TTA off (shares its weights)."""
    import dataclasses

    from cxrkit.segment.infer import load_lung_model

    model = load_lung_model()
    return dataclasses.replace(model, card=model.card.merged(tta_hflip=False))
