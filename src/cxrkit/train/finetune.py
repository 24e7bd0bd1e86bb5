"""Finetune mode: batches of (augmented) films, and freezing all but the last k backbone blocks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from cxrkit.classifier.dataset import CXRDataset, collate_skip_bad
from cxrkit.data.balance import balanced_sampler
from cxrkit.data.table import LabelTable
from cxrkit.fit import distributed
from cxrkit.train.config import TrainConfig


def backbone_blocks(backbone: nn.Module) -> list[nn.Module]:
    """The backbone as an ordered list of trainable blocks (top-level children, stages expanded)."""
    blocks: list[nn.Module] = []
    for child in backbone.children():
        if isinstance(child, nn.Sequential | nn.ModuleList) and len(child) > 1:
            blocks.extend(child.children())
        elif any(p.requires_grad for p in child.parameters()):
            blocks.append(child)
    return [b for b in blocks if any(True for _ in b.parameters())]


def freeze_all_but_last(model: nn.Module, k: int) -> None:
    """Freeze the backbone except its last `k` blocks; the head always trains."""
    blocks = backbone_blocks(model.backbone)
    for p in model.backbone.parameters():
        p.requires_grad = False
    for block in blocks[max(len(blocks) - k, 0) :] if k > 0 else []:
        for p in block.parameters():
            p.requires_grad = True


def make_film_batches(
    table: LabelTable,
    indices: np.ndarray,
    size: int,
    cfg: TrainConfig,
    cache_root: Path,
    augment,
    *,
    shuffle: bool,
    targets: np.ndarray | None = None,
) -> Callable[[int], DataLoader]:
    """A function epoch -> DataLoader over films; the shuffle is seeded by epoch (resumable).

    `cfg.batch_size` is the global batch. Every rank draws the same epoch order and takes
    its share (`cxrkit.fit.distributed.rank_share`; padded for training so ranks take
    equal steps, exact for evaluation) in micro-batches of
    `batch_size / (world_size * accumulate)`. Rank 0's order and loader seed are those of
    a one-process run; other ranks' workers get their own augmentation seeds.
    """
    ds = CXRDataset(
        table,
        indices=indices,
        size=size,
        resize_mode=cfg.resize_mode,
        crop=cfg.crop,
        cache_dir=cache_root / "decoded",
        transform=augment,
    )

    micro = distributed.micro_batch(cfg.batch_size, cfg.accumulate)

    def batches(epoch: int) -> DataLoader:
        seed = cfg.seed * 1000 + epoch
        order = _epoch_order(
            len(ds), seed, shuffle, cfg, targets[indices] if targets is not None else None
        )
        rank = distributed.current().rank
        return DataLoader(
            ds,
            batch_size=micro,
            sampler=distributed.rank_share(order, even=shuffle).tolist(),
            generator=torch.Generator().manual_seed(seed + 7919 * rank),
            num_workers=cfg.num_workers,
            collate_fn=collate_skip_bad,
            drop_last=False,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )

    return batches


def _epoch_order(n: int, seed: int, shuffle: bool, cfg: TrainConfig, targets) -> np.ndarray:
    """The epoch's film order, the same on every rank (and as DataLoader(shuffle=True) draws it)."""
    if shuffle and cfg.balance == "sampler" and targets is not None and targets.ndim == 1:
        return np.fromiter(balanced_sampler(targets, seed=seed), dtype=np.int64)
    if not shuffle:
        return np.arange(n)
    g = torch.Generator().manual_seed(seed)
    torch.empty((), dtype=torch.int64).random_(generator=g)  # the loader's worker base seed
    return torch.randperm(n, generator=g).numpy()
