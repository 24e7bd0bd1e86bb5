"""Optimizer, LR schedule and loss built from a TrainConfig."""

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


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig):
    """Per-epoch cosine or step decay; None for a constant rate."""
    if cfg.scheduler == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)
    if cfg.scheduler == "step":
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=cfg.step_size, gamma=cfg.gamma)
    return None


def build_loss(task: str, weights: np.ndarray | None) -> nn.Module:
    """Cross-entropy (optionally class-weighted), or BCE-with-logits with per-class pos_weight."""
    w = None if weights is None else torch.as_tensor(weights, dtype=torch.float32)
    if task == "multilabel":
        return nn.BCEWithLogitsLoss(pos_weight=w)
    return nn.CrossEntropyLoss(weight=w)
