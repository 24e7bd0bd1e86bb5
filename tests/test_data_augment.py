"""Training augmentation keeps films 1xSxS in [0, 1] and is configurable."""

from __future__ import annotations

import pytest
import torch

from cxrkit.data import build_augmentation, build_augmentation_from_dict
from cxrkit.errors import CxrkitError


def film(size: int = 64) -> torch.Tensor:
    """A left-bright, right-dark 1xSxS test pattern."""
    ramp = torch.linspace(1.0, 0.0, size)
    return ramp.expand(size, size).unsqueeze(0).clone()


def test_default_augmentation_changes_film_within_range() -> None:
    torch.manual_seed(0)
    aug = build_augmentation()
    x = film()
    outs = [aug(x) for _ in range(8)]
    for y in outs:
        assert y.shape == x.shape and y.dtype == torch.float32
        assert y.min() >= 0.0 and y.max() <= 1.0
    assert any(not torch.allclose(y, x, atol=1e-3) for y in outs)


def test_brightness_is_clipped() -> None:
    torch.manual_seed(0)
    aug = build_augmentation(hflip=False, rotate_deg=0, scale=None, translate=0, brightness=0.9)
    x = torch.ones(1, 16, 16)
    for _ in range(10):
        y = aug(x)
        assert y.max() <= 1.0 and y.min() >= 0.0


def test_everything_off_is_identity() -> None:
    aug = build_augmentation(
        hflip=False, rotate_deg=0, scale=None, translate=0, brightness=0, contrast=0
    )
    x = film(32)
    torch.testing.assert_close(aug(x), x)


def test_flip_only_mirrors() -> None:
    torch.manual_seed(1)
    aug = build_augmentation(
        hflip=True, rotate_deg=0, scale=None, translate=0, brightness=0, contrast=0
    )
    x = film(16)
    results = {bool(torch.equal(aug(x), x.flip(-1))) for _ in range(20)}
    assert results == {True, False}  # sometimes flipped, sometimes not


def test_from_dict() -> None:
    assert build_augmentation_from_dict({"enabled": False}) is None
    assert callable(build_augmentation_from_dict(None))
    aug = build_augmentation_from_dict(
        {
            "hflip": False,
            "scale": [1.0, 1.0],
            "rotate_deg": 0,
            "translate": 0,
            "brightness": 0,
            "contrast": 0,
        }
    )
    x = film(16)
    torch.testing.assert_close(aug(x), x)
    with pytest.raises(CxrkitError, match="unknown augmentation option"):
        build_augmentation_from_dict({"vflip": True})
