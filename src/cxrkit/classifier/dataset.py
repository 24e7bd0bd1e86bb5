"""A torch Dataset of a LabelTable's films for training and evaluation: read, cropped (the
card's `crop`, e.g. the lung crop) and resized as `Classifier.prepare` does; unreadable files
are skipped, not fatal."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, default_collate

from cxrkit.data.cache import DecodeCache, check_resize
from cxrkit.data.table import LabelTable
from cxrkit.errors import ImageReadError
from cxrkit.segment.crop import FilmCrop, as_crop

logger = logging.getLogger(__name__)

Item = dict[str, Any]


class CXRDataset(Dataset):
    """Films of `table` (optionally only `indices`) as 1xSxS float tensors in [0, 1].

    Each item is `{'image': (1, S, S) float32, 'target': long scalar (binary/multiclass)
    or float (C,) vector (multilabel), 'index': int}` where `index` is the record's index
    in `table`. A file that cannot be read gives `None` (logged as a warning and appended
    to `bad_files` as (path, reason) in the process that read it); use
    `collate_skip_bad` as the DataLoader's `collate_fn`. `transform` (e.g. augmentation)
    is applied to the image tensor. With `cache_dir`, decoded films go to a `DecodeCache`.
    `crop` ('lungs' or a `FilmCrop`) crops each film to its lung box before resizing.
    """

    def __init__(
        self,
        table: LabelTable,
        indices: Sequence[int] | np.ndarray | None = None,
        size: int = 224,
        resize_mode: str = "squash",
        cache_dir: str | Path | None = None,
        transform: Callable[[torch.Tensor], torch.Tensor] | None = None,
        crop: str | FilmCrop | None = None,
    ) -> None:
        check_resize(size, resize_mode)
        crop = as_crop(crop)
        self.table = table
        n = len(table)
        idx = np.arange(n) if indices is None else np.asarray(indices, dtype=np.int64)
        if idx.ndim != 1 or (idx.size and (idx.min() < 0 or idx.max() >= n)):
            raise IndexError(f"indices must be a 1-D list of record indices in [0, {n})")
        self.indices = idx
        self.size = int(size)
        self.resize_mode = resize_mode
        self.transform = transform
        self.crop = crop
        self.cache = (
            DecodeCache(cache_dir, size, resize_mode, crop) if cache_dir is not None else None
        )
        # Uncertain multi-label findings are NaN here; the multi-label loss skips them.
        self._targets = table.targets(mask_uncertain=True)
        self.bad_files: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.indices)

    def load_film(self, index: int) -> np.ndarray:
        """Decoded, resized float32 (S, S) film of record `index`; may raise ImageReadError."""
        path = self.table.records[index].path
        if self.cache is not None:
            return self.cache.load(path)
        from cxrkit.io import read_image, resize_film

        image, _meta = read_image(path)
        image = self.crop(image)
        return np.asarray(resize_film(image, self.size, mode=self.resize_mode), dtype=np.float32)

    def target(self, index: int) -> torch.Tensor:
        """Target of table record `index`: long scalar, or float vector for multilabel."""
        value = self._targets[index]
        if self.table.task == "multilabel":
            return torch.from_numpy(np.array(value, dtype=np.float32))
        return torch.tensor(int(value), dtype=torch.long)

    def __getitem__(self, i: int) -> Item | None:
        index = int(self.indices[i])
        try:
            film = self.load_film(index)
        except ImageReadError as exc:
            self.bad_files.append((exc.path, exc.reason))
            logger.warning("skipping unreadable film %s", exc)
            return None
        image = torch.from_numpy(np.ascontiguousarray(film, dtype=np.float32)).unsqueeze(0)
        if self.transform is not None:
            image = self.transform(image)
        return {"image": image, "target": self.target(index), "index": index}


def collate_skip_bad(batch: list[Item | None]) -> dict[str, Any] | None:
    """Drop `None` items (unreadable films) and default-collate the rest; None if none left."""
    kept = [item for item in batch if item is not None]
    if not kept:
        return None
    return default_collate(kept)
