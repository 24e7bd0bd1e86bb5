"""Small films for the screening net at decoding speed: worker processes, reduced-size JPEG
decoding, and the decode cache.

`small_film_batches(paths, size)` yields batches of films squashed to `size` (the polarity
/ view / not-a-chest-film net's input), read in `num_workers` DataLoader processes. JPEGs
decode at the DCT's reduced scale (`read_image(draft=size)`: 1/2 to 1/8 of the pixels);
PNG and DICOM decode at native size, then the usual area-like resize. With `cache_dir`,
each film is decoded once (`DecodeCache(..., draft=True)`, keyed by content) and later
runs read the small film back. Batches are stacked inside the workers, so one array per
batch crosses the process boundary.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from cxrkit.errors import ImageReadError
from cxrkit.io import read_image, resize_film


class SmallFilms(Dataset):
    """Films squashed to `size` (errors kept as items, not raised); cached when asked."""

    def __init__(
        self, paths: Sequence[str | os.PathLike[str]], size: int, cache_dir: Path | None = None
    ) -> None:
        self.paths, self.size, self.cache_dir = [Path(p) for p in paths], int(size), cache_dir
        self._cache: Any = None  # built in each worker on first use

    def __len__(self) -> int:
        return len(self.paths)

    def film(self, path: Path) -> np.ndarray:
        """One small film: from the cache when there is one, else a reduced-size decode."""
        if self.cache_dir is not None:
            if self._cache is None:
                from cxrkit.data.cache import DecodeCache

                self._cache = DecodeCache(self.cache_dir, self.size, "squash", draft=True)
            return self._cache.load(path)
        image, _ = read_image(path, draft=self.size)
        return resize_film(image, self.size, "squash")

    def __getitem__(self, i: int) -> dict[str, Any]:
        try:
            return {"index": i, "film": self.film(self.paths[i])}
        except ImageReadError as exc:
            return {"index": i, "error": exc.reason}
        except Exception as exc:  # one odd file must not stop a batch job
            return {"index": i, "error": f"unexpected {type(exc).__name__}: {exc}"}


def stack_small(items: list[dict[str, Any]]) -> dict[str, Any]:
    """One batch: `films` (N, S, S) float32 of the good items, their `index`, and
    `errors` [(index, reason)]; `order` is every index as given."""
    good = [it for it in items if "film" in it]
    return {
        "films": np.stack([it["film"] for it in good]).astype(np.float32) if good else None,
        "index": [it["index"] for it in good],
        "errors": [(it["index"], it["error"]) for it in items if "error" in it],
        "order": [it["index"] for it in items],
    }


def small_film_batches(
    paths: Sequence[str | os.PathLike[str]],
    size: int,
    *,
    batch_size: int = 256,
    num_workers: int = 2,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Batches (`stack_small`) of the films at `paths`, in order, squashed to `size`."""
    if batch_size < 1 or num_workers < 0:
        raise ValueError("`batch_size` must be >= 1 and `num_workers` >= 0")
    dataset = SmallFilms(paths, size, Path(cache_dir) if cache_dir is not None else None)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=stack_small,
        prefetch_factor=4 if num_workers else None,
    )
    yield from loader
