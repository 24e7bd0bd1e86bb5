"""Training augmentation for 1xSxS film tensors in [0, 1] (torchvision.transforms.v2)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torchvision.transforms import v2

from cxrkit.data.scanner_augment import SCANNER_KEYS, scanner_steps
from cxrkit.errors import CxrkitError

Transform = Callable[[torch.Tensor], torch.Tensor]


class ClampUnit(torch.nn.Module):
    """Clip values to [0, 1] (films stay valid after brightness/contrast changes)."""

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return image.clamp(0.0, 1.0)


def build_augmentation(
    hflip: bool = True,
    rotate_deg: float = 10,
    scale: tuple[float, float] | None = (0.9, 1.1),
    translate: float = 0.05,
    brightness: float = 0.1,
    contrast: float = 0.1,
    **scanner: float,
) -> Transform:
    """A random transform for (1, S, S) float films: flip, affine, brightness/contrast,
    scanner differences (`scanner`: any of gamma, equalize, resample, blur, noise, jpeg;
    see `cxrkit.data.scanner_augment.scanner_steps`), clip.

    Zero (or None/False) turns a part off. Areas moved in from outside the film are
    filled with 0 (black, like air). The output is always clipped to [0, 1]. Note that
    a horizontal flip moves the heart to the right side of the image; turn it off where
    laterality matters.
    """
    steps: list[torch.nn.Module] = []
    if hflip:
        steps.append(v2.RandomHorizontalFlip(p=0.5))
    scale_range = tuple(scale) if scale else None
    if scale_range is not None and len(scale_range) != 2:
        raise CxrkitError(f"augmentation scale must be (min, max), got {scale!r}")
    if rotate_deg or translate or (scale_range and scale_range != (1.0, 1.0)):
        steps.append(
            v2.RandomAffine(
                degrees=float(rotate_deg or 0.0),
                translate=(float(translate), float(translate)) if translate else None,
                scale=scale_range,
                interpolation=v2.InterpolationMode.BILINEAR,
                fill=0.0,
            )
        )
    if brightness or contrast:
        steps.append(v2.ColorJitter(brightness=brightness or None, contrast=contrast or None))
    steps.append(ClampUnit())
    site_steps = scanner_steps(**scanner)
    if site_steps:
        steps += [*site_steps, ClampUnit()]
    return v2.Compose(steps)


_KEYS = ("hflip", "rotate_deg", "scale", "translate", "brightness", "contrast", *SCANNER_KEYS)


def build_augmentation_from_dict(config: Mapping[str, Any] | None) -> Transform | None:
    """Build from a config section: None -> defaults, {'enabled': False} -> None (no
    augmentation), otherwise any of the keys in `_KEYS` (see `build_augmentation`)."""
    if config is None:
        return build_augmentation()
    if not isinstance(config, Mapping):
        raise CxrkitError(f"augmentation config must be a mapping, got {type(config).__name__}")
    options = dict(config)
    if not options.pop("enabled", True):
        return None
    unknown = sorted(set(options) - set(_KEYS))
    if unknown:
        raise CxrkitError(
            f"unknown augmentation option(s) {', '.join(unknown)}; "
            f"allowed: enabled, {', '.join(_KEYS)}"
        )
    if options.get("scale") is not None:
        options["scale"] = tuple(float(v) for v in options["scale"])
    return build_augmentation(**options)
