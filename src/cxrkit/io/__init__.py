"""Image reading: PNG, JPEG and DICOM chest films to float32 [0, 1] arrays, plus resizing."""

from cxrkit.io.info import FileInfo, inspect_file
from cxrkit.io.meta import DEFAULT_MAX_PIXELS, READER_VERSION, ImageMeta
from cxrkit.io.read import read_image, read_image_bytes
from cxrkit.io.resize import RESIZE_MODES, resize_film
from cxrkit.io.sniff import sniff_format

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FileInfo",
    "READER_VERSION",
    "RESIZE_MODES",
    "ImageMeta",
    "inspect_file",
    "read_image",
    "read_image_bytes",
    "resize_film",
    "sniff_format",
]
