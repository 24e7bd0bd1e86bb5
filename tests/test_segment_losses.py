"""Lung U-Net losses and the weight average: border band, loss ordering, config checks."""

from __future__ import annotations

import pytest
import torch

from cxrkit.errors import CxrkitError
from cxrkit.fit.engine import weight_average
from cxrkit.segment.losses import LOSSES, border_band, edge_weighted, make_loss
from cxrkit.segment.model import LungNet
from cxrkit.segment.train import SegTrainConfig


def _square(size: int = 32, lo: int = 8, hi: int = 24) -> torch.Tensor:
    target = torch.zeros(1, 1, size, size)
    target[..., lo:hi, lo:hi] = 1.0
    return target


def test_border_band_covers_only_pixels_near_the_border() -> None:
    band = border_band(_square(), radius=2)[0, 0]
    assert band[16, 16] == 0 and band[2, 2] == 0  # deep inside, far outside
    assert band[8, 16] == 1 and band[6, 16] == 1 and band[9, 16] == 1  # within 2 px
    assert band[5, 16] == 0 and band[11, 16] == 0
    assert border_band(torch.zeros(1, 1, 8, 8), 1).sum() == 0


@pytest.mark.parametrize("name", LOSSES)
def test_every_loss_prefers_the_right_mask(name: str) -> None:
    target = _square()
    loss = make_loss(name)
    right = loss(20 * (target - 0.5), target)
    wrong = loss(20 * (0.5 - target), target)
    assert torch.isfinite(right) and right < 0.1 < wrong


def test_edge_loss_weighs_border_errors_more_than_inner_ones() -> None:
    target = _square()
    logits = 20 * (target - 0.5)
    at_border, inside = logits.clone(), logits.clone()
    at_border[..., 8, 8:24] = -10.0  # the mask's top row called background
    inside[..., 16, 8:24] = -10.0  # a row in the middle called background
    assert edge_weighted(at_border, target) > edge_weighted(inside, target)


def test_unknown_loss_and_bad_decay_are_refused() -> None:
    with pytest.raises(ValueError, match="loss='focal'"):
        make_loss("focal")
    with pytest.raises(CxrkitError, match="loss='focal'"):
        SegTrainConfig(loss="focal")
    with pytest.raises(CxrkitError, match="ema_decay=1.5"):
        SegTrainConfig(ema_decay=1.5)


def test_weight_average_trails_the_trained_net() -> None:
    torch.manual_seed(0)
    net = LungNet(decoder_channels=(16, 8, 8, 8, 8))
    assert weight_average(net, None) is None
    ema = weight_average(net, 0.5)
    ema.update_parameters(net)  # the first update copies the weights
    start = next(ema.module.parameters()).detach().clone()
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    ema.update_parameters(net)
    moved = next(ema.module.parameters()).detach()
    assert torch.allclose(moved, start + 0.5, atol=1e-5)  # half way at decay 0.5
