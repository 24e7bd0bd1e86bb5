"""What `read_image` reports about a film besides its pixels; the reader's limits and version."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ImageFormat = Literal["png", "jpeg", "dicom"]

#: Bumped whenever `read_image` or `resize_film` give different pixels for the same bytes;
#: caches of decoded films (cxrkit.data.DecodeCache) key on it.
READER_VERSION = "2"

#: Largest pixel count (rows x columns) decoded by default; larger headers are refused as
#: decompression bombs before any pixel is decoded. Real chest films are at most ~20 Mpx.
DEFAULT_MAX_PIXELS = 100_000_000


@dataclass(frozen=True)
class ImageMeta:
    """Facts about a decoded film.

    `original_size` is the (h, w) of the decoded image as returned, i.e. after EXIF
    orientation, before any resizing. `bit_depth` is the bits per sample the file declares
    (DICOM BitsStored, PNG/JPEG sample depth). `photometric` is the DICOM Photometric
    Interpretation or the Pillow mode ('L', 'I;16', 'RGB', 'P', ...). `pixel_spacing` is
    (row, column) spacing in mm when the file gives it. `inverted` is True when the stored
    pixels were flipped to the MONOCHROME2 convention (bright bone, dark air).
    """

    path: str
    format: ImageFormat
    bit_depth: int
    original_size: tuple[int, int]
    photometric: str
    pixel_spacing: tuple[float, float] | None = None
    inverted: bool = False
    modality: str | None = None
