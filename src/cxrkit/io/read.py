"""Read any supported film (PNG, JPEG, DICOM) from a path or bytes, sniffing the content."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from cxrkit.errors import (
    CorruptImageError,
    EmptyFileError,
    ImageReadError,
    UnsupportedFormatError,
)
from cxrkit.io.contract import check_film
from cxrkit.io.meta import DEFAULT_MAX_PIXELS, ImageMeta
from cxrkit.io.raster import read_raster
from cxrkit.io.reasons import describe_exception, is_fatal
from cxrkit.io.sniff import SNIFF_BYTES, describe_content, sniff_format


def read_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft: int | None = None,
) -> tuple[np.ndarray, ImageMeta]:
    """Read a chest film as float32 (h, w) in [0, 1], MONOCHROME2 (bright bone), plus its meta.

    The format is sniffed from the content, not the file name. The film is 2-D, finite,
    float32 in [0, 1], at least `MIN_SIDE` px a side and within `max_pixels`
    (`cxrkit.io.contract`). Every failure raises an ImageReadError subclass naming the
    file and the reason; whatever a decoder raises (a Rust panic included) becomes a
    CorruptImageError, except Ctrl-C / exit and MemoryError, which propagate.

    `draft=N` lets a JPEG decode at a reduced scale (1/2, 1/4 or 1/8, Pillow's `draft`)
    whose sides stay >= N: for callers that shrink the film to N px anyway. The film is
    then smaller than the file (`meta.original_size` is still the file's size); other
    formats ignore it.
    """
    name = os.fspath(path)
    try:
        data = Path(name).read_bytes()
    except FileNotFoundError as exc:
        raise ImageReadError(name, "file not found") from exc
    except IsADirectoryError as exc:
        raise ImageReadError(name, "is a directory, not an image file") from exc
    except PermissionError as exc:
        raise ImageReadError(name, "permission denied") from exc
    except OSError as exc:
        raise ImageReadError(name, f"cannot read file ({describe_exception(exc)})") from exc
    return read_image_bytes(data, name, max_pixels=max_pixels, draft=draft)


def read_image_bytes(
    data: bytes,
    name: str = "<upload>",
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft: int | None = None,
) -> tuple[np.ndarray, ImageMeta]:
    """Same as `read_image` on in-memory bytes (e.g. an upload); `name` appears in errors."""
    if not data:
        raise EmptyFileError(name, "empty file (0 bytes)")
    data = bytes(data)  # accept bytearray/memoryview; no copy for bytes
    fmt = sniff_format(data[:SNIFF_BYTES])
    if fmt is None:
        raise UnsupportedFormatError(
            name,
            f"not a PNG, JPEG or DICOM file (the content looks like "
            f"{describe_content(data[:512])})",
        )
    try:
        image, meta = _decode(data, name, fmt, max_pixels, draft)
    except (ImageReadError, MemoryError):
        raise
    except BaseException as exc:  # last net: decoders raise anything, pyo3 panics included
        if is_fatal(exc):
            raise
        detail = describe_exception(exc)
        raise CorruptImageError(name, f"malformed {fmt.upper()} file ({detail})") from exc
    return check_film(image, name, max_pixels), meta


def _decode(
    data: bytes, name: str, fmt: str, max_pixels: int, draft: int | None = None
) -> tuple[np.ndarray, ImageMeta]:
    """Run the format's decoder (no contract check yet)."""
    if fmt == "dicom":
        # Imported here: pydicom takes a noticeable part of a second to import.
        from cxrkit.io.dicom import read_dicom

        return read_dicom(data, name, max_pixels)
    return read_raster(data, name, fmt, max_pixels, draft=draft)  # type: ignore[arg-type]
