"""Inspect films one by one: their ImageMeta, or the one-line reason they cannot be read."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

from cxrkit.errors import ImageReadError
from cxrkit.io.meta import DEFAULT_MAX_PIXELS, ImageMeta
from cxrkit.io.read import read_image

#: Keys of `FileInfo.to_dict()`, in order; the ImageMeta fields are None for unreadable files.
INFO_KEYS: tuple[str, ...] = (
    "path",
    "ok",
    *(f.name for f in dataclasses.fields(ImageMeta) if f.name != "path"),
    "error",
    "error_type",
)


@dataclass(frozen=True)
class FileInfo:
    """What `inspect_file` found: `meta` for a readable film, else `error` (the reason)."""

    path: str
    meta: ImageMeta | None = None
    error: str | None = None
    error_type: str | None = None

    @property
    def ok(self) -> bool:
        """True when the file was read as a film."""
        return self.meta is not None

    @property
    def message(self) -> str:
        """One line naming the file and the reason it could not be read ('' when ok)."""
        if self.error is None:
            return ""
        return " ".join(f"{self.path}: {self.error}".splitlines())

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-friendly dict with the keys of `INFO_KEYS` (tuples become lists)."""
        out: dict[str, Any] = dict.fromkeys(INFO_KEYS)
        out.update(path=self.path, ok=self.ok, error=self.error, error_type=self.error_type)
        if self.meta is not None:
            for key, value in dataclasses.asdict(self.meta).items():
                if key != "path":
                    out[key] = list(value) if isinstance(value, tuple) else value
        return out


def inspect_file(path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS) -> FileInfo:
    """Read one film with `read_image` and keep only its meta; never raises on a bad file.

    Every `ImageReadError` (and running out of memory) becomes `FileInfo.error`.
    """
    name = os.fspath(path)
    try:
        _image, meta = read_image(name, max_pixels=max_pixels)
    except ImageReadError as exc:
        return FileInfo(path=name, error=exc.reason, error_type=type(exc).__name__)
    except MemoryError:
        return FileInfo(path=name, error="out of memory while decoding", error_type="MemoryError")
    return FileInfo(path=name, meta=meta)
