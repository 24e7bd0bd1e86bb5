"""Optimizer and loss built from a TrainConfig (the schedule: `cxrkit.fit.schedule`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from cxrkit.train.config import TrainConfig


def build_optimizer(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    """AdamW or SGD (with momentum) over the trainable parameters."""
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)


class MaskedBCEWithLogitsLoss(nn.BCEWithLogitsLoss):
    """BCE-with-logits averaged over the known targets only: NaN targets (uncertain or
    unlabelled findings) add nothing to the loss or its gradient. Without NaNs it equals
    `nn.BCEWithLogitsLoss` (mean reduction)."""

    def forward(self, input: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        known = ~torch.isnan(target)
        if bool(known.all()):
            return super().forward(input, target)
        per_entry = nn.functional.binary_cross_entropy_with_logits(
            input,
            torch.where(known, target, torch.zeros_like(target)),
            pos_weight=self.pos_weight,
            reduction="none",
        )
        return (per_entry * known).sum() / known.sum().clamp(min=1)


def build_loss(task: str, weights: np.ndarray | None) -> nn.Module:
    """Cross-entropy (optionally class-weighted), or BCE-with-logits with per-class pos_weight
    that skips NaN (uncertain) multi-label targets."""
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if task == "multilabel":
        return MaskedBCEWithLogitsLoss(pos_weight=w)
    return nn.CrossEntropyLoss(weight=w)
