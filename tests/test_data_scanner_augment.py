"""Scanner augmentation: each transform changes the film the way a site would, within [0, 1]."""

from __future__ import annotations

import pytest
import torch

from cxrkit.data import build_augmentation_from_dict
from cxrkit.data.scanner_augment import (
    RandomBlur,
    RandomEqualize,
    RandomGamma,
    RandomJpeg,
    RandomNoise,
    RandomResample,
)
from cxrkit.errors import CxrkitError


def _film() -> torch.Tensor:
    y, x = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    return (0.2 + 0.6 * x * y + 0.1 * torch.sin(20 * x))[None].clamp(0, 1)


@pytest.mark.parametrize(
    "transform",
    [
        RandomGamma(2.0, p=1.0),
        RandomEqualize(p=1.0),
        RandomBlur(2.0, p=1.0),
        RandomResample(0.3, p=1.0),
        RandomNoise(0.1, p=1.0),
        RandomJpeg(10, p=1.0),
    ],
    ids=lambda t: type(t).__name__,
)
def test_each_scanner_transform_changes_the_film_and_keeps_its_shape(transform) -> None:
    torch.manual_seed(1)
    film = _film()
    out = transform(film)
    assert out.shape == film.shape and out.dtype == film.dtype
    assert not torch.allclose(out, film, atol=1e-3)


def test_blur_and_resample_remove_fine_detail() -> None:
    torch.manual_seed(0)
    film = _film()
    detail = lambda t: (t[..., 1:] - t[..., :-1]).abs().mean()  # noqa: E731
    assert detail(RandomBlur(2.0, p=1.0)(film)) < detail(film)
    assert detail(RandomResample(0.25, p=1.0)(film)) < detail(film)


def test_config_section_builds_a_pipeline_that_stays_in_the_unit_range() -> None:
    aug = build_augmentation_from_dict(
        {"gamma": 1.6, "equalize": 0.5, "blur": 1.0, "resample": 0.5, "noise": 0.2, "jpeg": 30}
    )
    torch.manual_seed(0)
    for _ in range(20):
        out = aug(_film())
        assert out.min() >= 0.0 and out.max() <= 1.0
    with pytest.raises(CxrkitError, match="sharpen"):
        build_augmentation_from_dict({"sharpen": 1})
