"""Training losses of the lung U-Net: region terms, plus optional boundary-aware ones.

`bce_dice` is the default. The others add weight where lung masks of two annotators
disagree most, the lung borders: `edge` weighs the cross-entropy of pixels near the
reference border more, `lovasz` adds the Lovasz hinge (a convex surrogate of each
film's IoU, from segmentation-models-pytorch).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

LOSSES = ("bce_dice", "edge", "lovasz")
# `edge`: pixels within EDGE_BAND of the input side from the reference border weigh
# 1 + EDGE_WEIGHT in the cross-entropy.
EDGE_BAND = 0.015
EDGE_WEIGHT = 4.0

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """1 - soft Dice per film (smoothed by 1), averaged over the batch."""
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    soft = (2 * inter + 1.0) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1.0)
    return (1.0 - soft).mean()


def border_band(target: torch.Tensor, radius: int) -> torch.Tensor:
    """1 where a pixel lies within `radius` px of the mask's border (dilation - erosion)."""
    k = 2 * radius + 1
    dilated = F.max_pool2d(target, k, stride=1, padding=radius)
    eroded = -F.max_pool2d(-target, k, stride=1, padding=radius)
    return dilated - eroded


def bce_dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice loss."""
    return F.binary_cross_entropy_with_logits(logits, target) + soft_dice_loss(logits, target)


def edge_weighted(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Soft Dice plus cross-entropy weighted 1 + EDGE_WEIGHT in the band along the border."""
    radius = max(1, round(EDGE_BAND * target.shape[-1]))
    weight = 1.0 + EDGE_WEIGHT * border_band(target, radius)
    bce = F.binary_cross_entropy_with_logits(logits, target, weight=weight)
    return bce / weight.mean() + soft_dice_loss(logits, target)


def make_loss(name: str) -> Loss:
    """The loss called `name` (one of LOSSES)."""
    if name == "bce_dice":
        return bce_dice
    if name == "edge":
        return edge_weighted
    if name == "lovasz":
        from segmentation_models_pytorch.losses import LovaszLoss

        lovasz = LovaszLoss("binary", per_image=True, from_logits=True)

        def bce_lovasz(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
            bce = F.binary_cross_entropy_with_logits(logits, target)
            return bce + lovasz(logits, target)

        return bce_lovasz
    raise ValueError(f"loss={name!r}: choose one of {LOSSES}")
