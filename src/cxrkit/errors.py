"""Exception types shared by every cxrkit module."""

from __future__ import annotations

from pathlib import Path


class CxrkitError(Exception):
    """Base class of every error cxrkit raises on purpose (the CLI prints these in one line)."""


class ImageReadError(CxrkitError):
    """A file could not be read as a chest film; names the file and the reason."""

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class EmptyFileError(ImageReadError):
    """The file has zero bytes."""


class UnsupportedFormatError(ImageReadError):
    """The bytes are not PNG, JPEG or DICOM (e.g. a text or PDF file renamed .png)."""


class CorruptImageError(ImageReadError):
    """The file claims a known format but cannot be decoded (truncated, damaged)."""


class DecompressionBombError(ImageReadError):
    """The image declares more pixels than the configured limit."""


class FilmTooSmallError(ImageReadError):
    """The image decodes but is too small to be a chest film (under MIN_SIDE px a side)."""


class DecodeTimeoutError(CorruptImageError):
    """Decoding took longer than the decode pool's time limit (the worker was replaced)."""


class DecoderCrashError(CorruptImageError):
    """The decoder process died on the file (segfault, abort); the worker was replaced."""


class DicomError(ImageReadError):
    """A DICOM file that is valid but not a single-frame projection radiograph."""


class DatasetError(CxrkitError):
    """A dataset (labels.csv or class folders) is malformed or unusable."""


class ModelFileError(CxrkitError):
    """A model file is missing, malformed, or incompatible."""
