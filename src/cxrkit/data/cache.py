"""On-disk cache of decoded, resized films, keyed by file content, size and resize mode.

A crop applied before the resize (the lung crop, `cxrkit.segment.crop.FilmCrop`) is passed
in as an object that names itself (`Crop`): this module never resolves crop names, so the
data layer stays below the models that make crops.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
from pathlib import Path
from typing import Protocol

import numpy as np

from cxrkit.errors import ImageReadError
from cxrkit.io.atomic import atomic_write
from cxrkit.io.meta import READER_VERSION

logger = logging.getLogger(__name__)

RESIZE_MODES = ("squash", "pad", "crop")
_CHUNK = 1 << 20
_SCALE = 65535.0  # films are stored as uint16: exact for 8-bit sources, 1/65535 steps otherwise


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def reader_version() -> str:
    """Version tag of the image reader; a new reader version starts a fresh cache folder."""
    return str(READER_VERSION)


class Crop(Protocol):
    """A crop applied to a decoded film before its resize (e.g. `FilmCrop('lungs')`)."""

    @property
    def name(self) -> str | None:
        """The crop's name; None: no crop."""

    @property
    def key(self) -> str:
        """Cache-key part naming the crop and the model that makes it."""

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """The cropped film."""


def check_resize(size: int, resize_mode: str) -> None:
    """Raise ValueError early for a size or resize mode that `resize_film` would refuse."""
    if resize_mode not in RESIZE_MODES:
        raise ValueError(
            f"resize mode must be one of {', '.join(RESIZE_MODES)}, not {resize_mode!r}"
        )
    if isinstance(size, bool) or int(size) != size or size < 1:
        raise ValueError(f"size must be a positive integer, not {size!r}")


class DecodeCache:
    """Decode + resize each film once and keep the result as a .npy under `cache_dir`.

    Entries live in `cache_dir/<size>-<mode>[-crop-<crop key>]-v<reader version>/<sha256>.npy`
    (the crop key names the crop and the lung model that made it),
    so a renamed or copied file is still a hit and an edited file is a miss. A stat index
    (`cache_dir/stat/`, path + mtime_ns + size -> sha256) spares re-hashing unchanged
    files. Writes are atomic, so several DataLoader workers may share one cache. `hits`
    and `misses` count this instance's loads (per worker process when used in workers).
    `draft=True` lets JPEGs decode at a reduced scale (`read_image(draft=size)`, for small
    sizes such as the screening net's); its entries live apart (`-draft` in the folder).
    `crop` (a `Crop` object such as `FilmCrop('lungs')`, or None) is applied before the resize.
    """

    def __init__(
        self,
        cache_dir: str | Path,
        size: int,
        resize_mode: str = "squash",
        crop: Crop | None = None,
        *,
        draft: bool = False,
    ) -> None:
        check_resize(size, resize_mode)
        self.cache_dir = Path(cache_dir)
        self.size = int(size)
        self.resize_mode = resize_mode
        if isinstance(crop, str):
            raise TypeError(
                f"crop must be a crop object, not the name {crop!r}: "
                f"pass cxrkit.segment.crop.FilmCrop({crop!r})"
            )
        self.crop = crop  # the crop callable carries its cache key
        crop_part = f"-crop-{crop.key}" if crop is not None and crop.name else ""
        crop_part += "-draft" if draft else ""
        self.draft = draft
        self.entry_dir = (
            self.cache_dir / f"{self.size}-{resize_mode}{crop_part}-v{reader_version()}"
        )
        self.stat_dir = self.cache_dir / "stat"
        self.hits = 0
        self.misses = 0
        self._hashes: dict[tuple[str, int, int], str] = {}

    def content_hash(self, path: str | Path) -> str:
        """sha256 of the file, from the stat index when path, mtime and size are unchanged."""
        abspath = os.path.abspath(path)
        st = os.stat(abspath)
        key = (abspath, st.st_mtime_ns, st.st_size)
        cached = self._hashes.get(key)
        if cached is not None:
            return cached
        stamp = f"{st.st_mtime_ns} {st.st_size} "
        index_file = self.stat_dir / f"{hashlib.sha1(abspath.encode()).hexdigest()}.txt"
        try:
            text = index_file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError):
            text = ""
        if text.startswith(stamp) and len(text) == len(stamp) + 64:
            digest = text[len(stamp) :]
        else:
            digest = file_sha256(abspath)
            with contextlib.suppress(OSError):  # the index only saves time; never fail on it
                atomic_write(index_file, lambda fh: fh.write((stamp + digest).encode("ascii")))
        self._hashes[key] = digest
        return digest

    def entry_path(self, path: str | Path) -> Path:
        """Where the decoded film of `path` is (or will be) stored."""
        return self.entry_dir / f"{self.content_hash(path)}.npy"

    def load(self, path: str | Path) -> np.ndarray:
        """The film at `path` as float32 (size, size) in [0, 1]; decoded only on a miss.

        Raises `cxrkit.errors.ImageReadError` (from the reader) on unreadable files;
        failures are not cached.
        """
        try:
            entry = self.entry_path(path)
        except FileNotFoundError as exc:
            raise ImageReadError(path, "file not found") from exc
        except OSError as exc:
            raise ImageReadError(path, f"cannot read file ({exc.strerror or exc})") from exc
        try:
            stored = np.load(entry, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            stored = None
        if stored is not None and stored.shape == (self.size, self.size):
            self.hits += 1
            return stored.astype(np.float32) / np.float32(_SCALE)
        from cxrkit.io import read_image, resize_film

        image, _meta = read_image(path, draft=self.size if self.draft else None)
        if self.crop is not None:
            image = self.crop(image)
        film = np.asarray(resize_film(image, self.size, mode=self.resize_mode), dtype=np.float32)
        quantised = np.round(np.clip(film, 0.0, 1.0) * _SCALE).astype(np.uint16)
        try:
            atomic_write(entry, lambda fh: np.save(fh, quantised, allow_pickle=False))
        except OSError as exc:  # full or read-only disk: still serve the film
            logger.warning("could not write decode cache entry %s (%s)", entry, exc)
        self.misses += 1
        return quantised.astype(np.float32) / np.float32(_SCALE)


def default_cache_dir() -> Path:
    """`$CXR_CACHE_DIR`, else `~/.cache/cxrkit`: decoded films, CNN codes and exported
    graphs live here."""
    return Path(os.environ.get("CXR_CACHE_DIR", Path.home() / ".cache" / "cxrkit"))
