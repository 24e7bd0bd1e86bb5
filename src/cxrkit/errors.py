"""Exception types shared by every cxrkit module."""

from __future__ import annotations

from pathlib import Path


class CxrkitError(Exception):
    """Base class of every error cxrkit raises on purpose (the CLI prints these in one line)."""


_MAX_REASON = 400


def one_line(text: str, limit: int = _MAX_REASON) -> str:
    """`text` as one printable line: whitespace runs collapsed, control characters escaped
    (a hostile file's header values end up in reasons), cut to `limit` characters."""
    flat = " ".join(str(text).split())
    clean = "".join(ch if ch.isprintable() else repr(ch)[1:-1] for ch in flat)
    return clean if len(clean) <= limit else clean[: limit - 3] + "..."


class ImageReadError(CxrkitError):
    """A file could not be read as a chest film; names the file and the reason.

    The reason is always one printable line (see `one_line`).
    """

    def __init__(self, path: str | Path, reason: str) -> None:
        self.path = str(path)
        self.reason = one_line(reason)
        super().__init__(f"{self.path}: {self.reason}")


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


class ModelOutputError(CxrkitError):
    """The model gave probabilities that are not finite numbers in [0, 1]; no label."""


class UnsupportedViewError(CxrkitError):
    """A film of a view (lateral, frontal) the model was not trained on; nothing computed."""


class DiskFullError(CxrkitError, OSError):
    """A write ran out of disk space; the file that was there before is left unchanged.

    Also an `OSError` (errno ENOSPC or EDQUOT), so callers that tolerate a failed optional
    write (a cache entry) still do.
    """

    def __init__(self, path: str | Path, code: int, free_bytes: int | None = None) -> None:
        self.path = str(path)
        self.free_bytes = free_bytes
        free = f" ({free_bytes / 1e6:.1f} MB free)" if free_bytes is not None else ""
        self.message = (
            f"{self.path}: no space left on device{free}; the write was undone and any "
            "previous file there is unchanged: free some space and run again"
        )
        OSError.__init__(self, code, self.message)

    def __str__(self) -> str:
        return self.message

    def __reduce__(self) -> tuple:
        return (type(self), (self.path, self.errno, self.free_bytes))
