"""The film contract, checked once for every film that leaves the reader."""

from __future__ import annotations

import numpy as np

from cxrkit.errors import CorruptImageError, FilmTooSmallError
from cxrkit.io.limits import check_pixel_count

#: Smallest side (px) of a film the reader returns; smaller images are refused.
MIN_SIDE = 16


def check_film(image: np.ndarray, name: str, max_pixels: int) -> np.ndarray:
    """Return `image` if it is a 2-D finite float32 film in [0, 1], MIN_SIDE..max_pixels.

    Otherwise raise an ImageReadError subclass naming the file and the broken rule:
    FilmTooSmallError, DecompressionBombError or CorruptImageError (wrong shape or dtype,
    non-finite or out-of-range values). A decoder never gets to hand out a NaN film.
    """
    if not isinstance(image, np.ndarray) or image.ndim != 2:
        shape = getattr(image, "shape", type(image).__name__)
        raise CorruptImageError(name, f"the decoder gave an image of shape {shape}, not 2-D")
    if image.dtype != np.float32:
        if not np.issubdtype(image.dtype, np.floating):
            raise CorruptImageError(name, f"the decoder gave {image.dtype} pixels, not float")
        image = image.astype(np.float32)
    height, width = (int(v) for v in image.shape)
    if min(height, width) < MIN_SIDE:
        raise FilmTooSmallError(
            name,
            f"image is {width}x{height} px, too small for a chest film "
            f"(at least {MIN_SIDE} px a side)",
        )
    check_pixel_count(name, height, width, max_pixels)
    low, high = float(image.min()), float(image.max())  # NaN propagates through both
    if not (np.isfinite(low) and np.isfinite(high)):
        bad = int(np.count_nonzero(~np.isfinite(image)))
        raise CorruptImageError(
            name, f"decoding gave {bad:,} non-finite pixel values (NaN or infinity)"
        )
    if low < 0.0 or high > 1.0:
        raise CorruptImageError(
            name, f"decoding gave pixel values in [{low:g}, {high:g}], outside [0, 1]"
        )
    return image
