"""Class imbalance: loss weights and a class-balanced sampler."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from torch.utils.data import WeightedRandomSampler


def class_weights(targets: np.ndarray, task: str, num_classes: int | None = None) -> np.ndarray:
    """Per-class loss weights, float32 (C,).

    binary/multiclass: inverse class frequency normalised so that the sample-weighted
    mean is 1 (`N / (C * n_c)`, as scikit-learn's 'balanced'); absent classes get 0.
    multilabel: `pos_weight = negatives / positives` per label (1 where a label has no
    positives or no negatives), for `BCEWithLogitsLoss(pos_weight=...)`; NaN (uncertain)
    entries count as neither.
    """
    y = np.asarray(targets)
    if task == "multilabel":
        if y.ndim != 2:
            raise ValueError(f"multilabel targets must be (N, C), got shape {y.shape}")
        pos = (y > 0.5).sum(axis=0).astype(np.float64)
        neg = (y < 0.5).sum(axis=0).astype(np.float64)  # NaN (uncertain) is neither
        weights = np.where((pos > 0) & (neg > 0), neg / np.maximum(pos, 1.0), 1.0)
        return weights.astype(np.float32)
    if y.ndim != 1:
        raise ValueError(f"{task} targets must be (N,) class indices, got shape {y.shape}")
    y = y.astype(np.int64)
    c = int(num_classes) if num_classes is not None else int(y.max()) + 1 if y.size else 0
    counts = np.bincount(y, minlength=c).astype(np.float64)
    present = counts > 0
    weights = np.zeros(c, dtype=np.float64)
    weights[present] = len(y) / (present.sum() * counts[present])
    return weights.astype(np.float32)


def sample_weights(targets: np.ndarray) -> np.ndarray:
    """Per-sample weights that give every class the same expected share of draws.

    For (N,) class indices: 1 / count of the sample's class. For (N, C) multi-hot rows:
    the largest 1 / count among its labels (rows with none count as a "no finding" class).
    """
    y = np.asarray(targets)
    if y.ndim == 1:
        counts = np.bincount(y.astype(np.int64))
        return (1.0 / counts[y.astype(np.int64)]).astype(np.float64)
    hot = y > 0.5
    none = ~hot.any(axis=1)
    full = np.concatenate([hot, none[:, None]], axis=1)
    inv = 1.0 / np.maximum(full.sum(axis=0), 1)
    return (full * inv[None, :]).max(axis=1).astype(np.float64)


def balanced_sampler(
    targets: np.ndarray, num_samples: int | None = None, seed: int | None = None
) -> WeightedRandomSampler:
    """A WeightedRandomSampler (with replacement) drawing classes equally often per epoch."""
    import torch
    from torch.utils.data import WeightedRandomSampler

    weights = torch.as_tensor(sample_weights(targets), dtype=torch.double)
    generator = torch.Generator().manual_seed(seed) if seed is not None else None
    return WeightedRandomSampler(
        weights,
        num_samples=int(num_samples) if num_samples is not None else len(weights),
        replacement=True,
        generator=generator,
    )
