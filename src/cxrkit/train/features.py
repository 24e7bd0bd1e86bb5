"""Features mode: run a frozen backbone once, cache its pooled CNN codes on disk, train a head."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader

from cxrkit.classifier.dataset import CXRDataset, collate_skip_bad
from cxrkit.data.table import LabelTable
from cxrkit.fit import distributed
from cxrkit.io.atomic import atomic_write
from cxrkit.models.inference import predict_loader
from cxrkit.progress import progress_lines
from cxrkit.segment.crop import crop_key

log = logging.getLogger("cxrkit.train")


def features_key(parts: dict) -> str:
    """A stable short hash of everything that determines a feature array."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def file_fingerprint(paths: list[Path]) -> str:
    """Hash of paths with their sizes and modification times (a changed film changes it)."""
    h = hashlib.sha256()
    for p in paths:
        st = p.stat() if p.exists() else None
        h.update(f"{p}|{st.st_size if st else -1}|{st.st_mtime_ns if st else -1}\n".encode())
    return h.hexdigest()[:24]


def extract_features(
    model: torch.nn.Module,
    table: LabelTable,
    indices: np.ndarray,
    *,
    size: int,
    resize_mode: str,
    cache_root: Path,
    key_parts: dict,
    device: torch.device,
    transform=None,
    batch_size: int = 64,
    num_workers: int = 2,
    seed: int = 0,
    crop: str | None = None,
) -> np.ndarray:
    """Pooled features for `table.records[indices]`, shape (len(indices), D); NaN rows = unreadable.

    Cached under `cache_root/<key>.npy`; the key covers the backbone, its weights, the
    preprocessing, any augmentation and the files' sizes and mtimes. In a distributed run
    each rank codes every world_size-th film, all ranks receive all codes, and rank 0
    writes the cache file (used only when every rank finds it).
    """
    paths = [table.records[i].path for i in indices]
    key = features_key(
        {
            **key_parts,
            "size": size,
            "resize": resize_mode,
            "files": file_fingerprint(paths),
            "aug": transform is not None,
            "seed": seed,
            **({"crop": crop_key(crop)} if crop else {}),
        }
    )
    target = cache_root / f"{key}.npy"
    cached = _load_codes(target, (len(indices), model.feature_dim))
    if distributed.all_ranks(cached is not None):
        log.info("CNN codes: cache hit %s", target.name)
        return cached
    dataset = CXRDataset(
        table,
        indices=distributed.rank_share(indices, even=False),
        size=size,
        resize_mode=resize_mode,
        cache_dir=cache_root.parent / "decoded",
        transform=transform,
        crop=crop,
    )
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        collate_fn=collate_skip_bad,
        persistent_workers=False,
        generator=torch.Generator().manual_seed(seed),
        worker_init_fn=_seed_worker,
    )
    feats, got = predict_loader(  # decodes (and caches) each film on the way
        model,
        progress_lines(loader, what="CNN codes", unit="batches", enabled=distributed.is_main()),
        task="binary",
        device=device,
        output="features",
    )
    feats, got = distributed.gather_rows(feats, got)
    out = np.full((len(indices), model.feature_dim), np.nan, dtype=np.float32)
    pos = {int(i): k for k, i in enumerate(indices)}
    for row, i in zip(feats, got, strict=True):
        out[pos[int(i)]] = row
    if distributed.is_main():
        atomic_write(target, lambda fh: np.save(fh, out))
    return out


def _load_codes(path: Path, shape: tuple[int, int]) -> np.ndarray | None:
    """A cached code array of `shape`, or None (absent, damaged or another shape: recompute)."""
    if not path.is_file():
        return None
    try:
        codes = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        log.warning("CNN codes: ignoring unreadable cache file %s (%s)", path.name, exc)
        return None
    if codes.shape != shape or codes.dtype != np.float32:
        log.warning(
            "CNN codes: ignoring %s (%s %s, not %s)", path.name, codes.dtype, codes.shape, shape
        )
        return None
    return codes


def _seed_worker(worker_id: int) -> None:
    seed = torch.initial_seed() % 2**32
    np.random.seed(seed)
    import random

    random.seed(seed)


class FeatureBatches:
    """Shuffled mini-batches over cached features, seeded by epoch so a resume replays them.

    `batch_size` is the global batch. In a distributed run each rank yields its share of
    every batch (`cxrkit.fit.distributed.rank_share`): the training order is padded so
    the ranks take equal steps, an unshuffled (evaluation) order is split exactly. With
    `accumulate` K, each global batch comes as K micro-batches.
    """

    def __init__(
        self,
        features: np.ndarray,
        targets: np.ndarray,
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        sample_weights: np.ndarray | None = None,
        accumulate: int = 1,
    ) -> None:
        self.x = torch.as_tensor(features, dtype=torch.float32)
        self.y = torch.as_tensor(targets)
        self.batch_size, self.seed, self.shuffle = batch_size, seed, shuffle
        self.sample_weights = sample_weights
        self.micro = distributed.micro_batch(batch_size, accumulate) if shuffle else batch_size

    def __call__(self, epoch: int = 0):
        n = len(self.x)
        g = torch.Generator().manual_seed(self.seed * 1000 + epoch)
        if self.sample_weights is not None:
            order = torch.multinomial(
                torch.as_tensor(self.sample_weights, dtype=torch.double),
                n,
                replacement=True,
                generator=g,
            )
        elif self.shuffle:
            order = torch.randperm(n, generator=g)
        else:
            order = torch.arange(n)
        # training: equal steps per rank; evaluation: each film once, on one rank
        training = self.shuffle or self.sample_weights is not None
        order = torch.as_tensor(distributed.rank_share(order, even=training))
        for s in range(0, len(order), self.micro):
            sel = order[s : s + self.micro]
            yield {"image": self.x[sel], "target": self.y[sel], "index": sel}


@contextmanager
def single_cpu_thread(device: torch.device) -> Iterator[None]:
    """Train a small head on one CPU thread: on 2 busy cores, OpenMP spin-waits cost 10x."""
    before = torch.get_num_threads()
    if device.type == "cpu":
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)
