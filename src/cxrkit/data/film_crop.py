"""`FilmCrop`: the card's named crop as one callable that knows its cache key and its box.

`FilmCrop(name)(image)` is `cxrkit.data.crop.apply_crop(image, name)` (the one lung crop);
`.key` is the decode-cache key part of that crop (its name and the lung model that makes
it); `.box(image)` also says where the crop lies in the film, so a heat map computed on
the cropped input can be put back onto the film's own pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cxrkit.data.crop import apply_crop, check_crop, crop_key

#: (top, bottom, left, right) in film pixels; bottom and right exclusive.
Box = tuple[int, int, int, int]


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
        h, w = image.shape[:2]
        cropped = apply_crop(image, self.name)
        if cropped.shape[:2] == (h, w):
            return cropped, (0, h, 0, w)
        return cropped, locate_block(image, cropped)


def as_crop(crop: str | FilmCrop | None) -> FilmCrop:
    """A `FilmCrop` from a crop name (None, 'lungs') or a `FilmCrop` itself."""
    return crop if isinstance(crop, FilmCrop) else FilmCrop(crop)


def locate_block(image: np.ndarray, block: np.ndarray) -> Box:
    """Where `block`, an exact copy of a window of `image`, lies in it.

    Candidates are the windows whose corner and centre pixels match (one vectorised pass);
    the first that matches in full wins. Raises ValueError when no window matches.
    """
    img, blk = np.asarray(image), np.asarray(block)
    (hh, ww), (h, w) = img.shape[:2], blk.shape[:2]
    if h > hh or w > ww:
        raise ValueError(f"block {blk.shape} is larger than the image {img.shape}")
    rows, cols = hh - h + 1, ww - w + 1
    hit = np.ones((rows, cols), bool)
    for y, x in ((0, 0), (h - 1, w - 1), (h // 2, w // 2), (0, w - 1), (h - 1, 0)):
        hit &= img[y : y + rows, x : x + cols] == blk[y, x]
    for top, left in zip(*np.nonzero(hit), strict=True):
        if np.array_equal(img[top : top + h, left : left + w], blk):
            return int(top), int(top + h), int(left), int(left + w)
    raise ValueError("the block is not a window of the image")
