"""Refuse decompression bombs: read declared sizes from headers before decoding pixels."""

from __future__ import annotations

import struct

from cxrkit.errors import DecompressionBombError
from cxrkit.io.meta import ImageFormat
from cxrkit.io.sniff import PNG_MAGIC

# JPEG start-of-frame markers (C0-CF except DHT C4, JPG C8, DAC CC) carry the frame size.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# Markers that stand alone, with no length field.
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01, 0xD8}
_JPEG_SOS = 0xDA


def check_pixel_count(name: str, height: int, width: int, max_pixels: int) -> None:
    """Raise DecompressionBombError when height x width exceeds max_pixels."""
    pixels = int(height) * int(width)
    if pixels > max_pixels:
        raise DecompressionBombError(
            name,
            f"refused as a possible decompression bomb: the header declares "
            f"{width}x{height} = {pixels:,} pixels, more than the limit of {max_pixels:,} "
            f"(raise max_pixels to read it)",
        )


def raster_header_size(data: bytes, fmt: ImageFormat) -> tuple[int, int, int] | None:
    """(height, width, bits per sample) declared by a PNG or JPEG header, None if not found."""
    if fmt == "png":
        return _png_header_size(data)
    if fmt == "jpeg":
        return _jpeg_header_size(data)
    return None


def _png_header_size(data: bytes) -> tuple[int, int, int] | None:
    start = len(PNG_MAGIC)
    if data[start + 4 : start + 8] != b"IHDR" or len(data) < start + 17:
        return None
    width, height, depth = struct.unpack(">IIB", data[start + 8 : start + 17])
    return height, width, depth


def _jpeg_header_size(data: bytes) -> tuple[int, int, int] | None:
    pos, end = 2, len(data)
    while pos + 4 <= end:
        if data[pos] != 0xFF:
            return None  # lost sync: let the decoder report the damage
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        if marker in _JPEG_SOF:
            if pos + 9 > end:
                return None
            depth, height, width = struct.unpack(">BHH", data[pos + 4 : pos + 9])
            return height, width, depth
        if marker == _JPEG_SOS:
            return None
        pos += 2 + length
    return None
