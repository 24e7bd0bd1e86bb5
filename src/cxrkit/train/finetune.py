"""Finetune mode: batches of (augmented) films, and freezing all but the last k backbone blocks."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader

from cxrkit.data.balance import balanced_sampler
from cxrkit.data.dataset import CXRDataset, collate_skip_bad
from cxrkit.data.table import LabelTable
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
    """A function epoch -> DataLoader over films; the shuffle is seeded by epoch (resumable)."""
    ds = CXRDataset(
        table,
        indices=indices,
        size=size,
        resize_mode=cfg.resize_mode,
        crop=cfg.crop,
        cache_dir=cache_root / "decoded",
        transform=augment,
    )

    def batches(epoch: int) -> DataLoader:
        g = torch.Generator().manual_seed(cfg.seed * 1000 + epoch)
        sampler = None
        if shuffle and cfg.balance == "sampler" and targets is not None and targets.ndim == 1:
            sampler = balanced_sampler(targets[indices], seed=cfg.seed * 1000 + epoch)
        return DataLoader(
            ds,
            batch_size=cfg.batch_size,
            shuffle=shuffle and sampler is None,
            sampler=sampler,
            generator=g,
            num_workers=cfg.num_workers,
            collate_fn=collate_skip_bad,
            drop_last=False,
            persistent_workers=False,
            pin_memory=torch.cuda.is_available(),
        )

    return batches
