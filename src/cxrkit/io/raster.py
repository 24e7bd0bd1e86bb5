"""Decode PNG and JPEG films with Pillow into float32 grey images in [0, 1]."""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Literal

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cxrkit.errors import CorruptImageError, DecompressionBombError
from cxrkit.io.limits import check_pixel_count, raster_header_size
from cxrkit.io.meta import ImageMeta
from cxrkit.io.reasons import describe_exception

RasterFormat = Literal["png", "jpeg"]

_PILLOW_FORMAT = {"png": "PNG", "jpeg": "JPEG"}
_SIXTEEN_BIT_MODES = frozenset({"I;16", "I;16B", "I;16L", "I;16N"})
_MODE_BITS = {"1": 1, "L": 8, "P": 8, "I": 16, **dict.fromkeys(_SIXTEEN_BIT_MODES, 16)}
_EXIF_ORIENTATION = 0x0112


def read_raster(
    data: bytes, name: str, fmt: RasterFormat, max_pixels: int, *, draft: int | None = None
) -> tuple[np.ndarray, ImageMeta]:
    """Decode PNG or JPEG bytes to a float32 (h, w) image in [0, 1] and its ImageMeta.

    Colour and palette images become grey by Rec. 601 luma; alpha is dropped. 8-bit samples
    are divided by 255 and 16-bit ones by 65535, as the PNG standard scales samples to the
    full range whatever their significant bits (a non-conforming writer that stores 12-bit
    values in 16 bits gives a dark image). JPEG EXIF orientation is applied. `draft=N`: a
    JPEG is decoded at the smallest of 1/1, 1/2, 1/4, 1/8 scale whose sides are still
    >= N px (the DCT's own reduction, much faster); `meta.original_size` stays the file's.
    """
    declared = raster_header_size(data, fmt)
    if declared is not None:
        check_pixel_count(name, declared[0], declared[1], max_pixels)
    # Pillow warns above Image.MAX_IMAGE_PIXELS; the caller's max_pixels has already ruled.
    quiet = declared is not None and _over_pillow_warning_limit(declared[0] * declared[1])
    with _no_bomb_warning() if quiet else nullcontext():
        im = _open(data, name, fmt)
        check_pixel_count(name, im.height, im.width, max_pixels)
        full_hw = (int(im.height), int(im.width))
        if draft and fmt == "jpeg":
            im.draft(im.mode, (int(draft), int(draft)))
        _decode(im, name, fmt)
    decoded_hw = (int(im.height), int(im.width))  # before EXIF turns it
    photometric = im.mode
    if fmt == "jpeg":
        im = _apply_exif_orientation(im)
    image = _to_unit_grey(im)
    if declared is not None and photometric != "P":  # palette PNGs declare index bits
        bit_depth = declared[2]
    else:
        bit_depth = _MODE_BITS.get(photometric, 8)
    meta = ImageMeta(
        path=name,
        format=fmt,
        bit_depth=int(bit_depth),
        original_size=_oriented(full_hw, decoded_hw, image.shape),
        photometric=photometric,
    )
    return image, meta


def _oriented(
    full_hw: tuple[int, int], decoded_hw: tuple[int, int], shape: tuple[int, ...]
) -> tuple[int, int]:
    """The file's own (h, w), turned as EXIF turned the decoded image."""
    turned = (int(shape[0]), int(shape[1])) != decoded_hw
    return (full_hw[1], full_hw[0]) if turned else full_hw


def _open(data: bytes, name: str, fmt: RasterFormat) -> Image.Image:
    """Parse the header (no pixel decoding), mapping every Pillow failure to our errors."""
    try:
        return Image.open(io.BytesIO(data), formats=(_PILLOW_FORMAT[fmt],))
    except Image.DecompressionBombError as exc:
        raise DecompressionBombError(
            name, f"refused as a possible decompression bomb by Pillow's own limit ({exc})"
        ) from exc
    except MemoryError:
        raise
    except UnidentifiedImageError as exc:  # its message only names the BytesIO object
        reason = f"damaged or truncated {fmt.upper()} header: Pillow cannot parse it"
        raise CorruptImageError(name, reason) from exc
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError, struct.error...
        detail = describe_exception(exc)
        raise CorruptImageError(name, f"damaged {fmt.upper()} header ({detail})") from exc


def _decode(im: Image.Image, name: str, fmt: RasterFormat) -> None:
    """Decode the pixels; a file that ends early is an error, never a half-grey image."""
    try:
        im.load()
    except MemoryError:
        raise
    except Exception as exc:
        detail = describe_exception(exc)
        if "truncated" in detail.lower() or isinstance(exc, EOFError):
            reason = f"truncated {fmt.upper()} file: the image data ends early ({detail})"
        else:
            reason = f"damaged {fmt.upper()} image data ({detail})"
        raise CorruptImageError(name, reason) from exc


def _apply_exif_orientation(im: Image.Image) -> Image.Image:
    """Rotate/flip as the EXIF Orientation tag says (phones and some scanners set it)."""
    if "exif" not in im.info:
        return im
    try:
        orientation = im.getexif().get(_EXIF_ORIENTATION, 1)
        if orientation in (None, 1):
            return im
        return ImageOps.exif_transpose(im)
    except Exception:  # unreadable EXIF must not lose an otherwise good film
        return im


def _to_unit_grey(im: Image.Image) -> np.ndarray:
    """float32 (h, w) in [0, 1] from any Pillow mode PNG/JPEG can produce."""
    mode = im.mode
    if mode in _SIXTEEN_BIT_MODES:
        return np.divide(np.asarray(im), 65535, dtype=np.float32)
    if mode == "I":  # 32-bit container for 16-bit samples
        out = np.divide(np.asarray(im), 65535, dtype=np.float32)
        return np.clip(out, 0.0, 1.0, out=out)
    if mode == "1":
        return np.asarray(im, dtype=np.float32)
    if mode != "L":
        im = im.convert("L")  # luma for RGB/RGBA/CMYK/YCbCr, palette colours for P, drops alpha
    return np.divide(np.asarray(im), 255, dtype=np.float32)


def _over_pillow_warning_limit(pixels: int) -> bool:
    limit = Image.MAX_IMAGE_PIXELS
    return limit is not None and pixels > limit


@contextmanager
def _no_bomb_warning() -> Iterator[None]:
    """Silence Pillow's DecompressionBombWarning inside the block (only used for huge films)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield
