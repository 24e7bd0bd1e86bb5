"""Scanner and site augmentation: the tone, sharpness and noise differences between hospitals.

A film from another site differs less in anatomy than in how it was exposed, processed and
stored: another tone curve (gamma), another contrast processing (histogram equalisation),
another detector resolution (blur, down/up-sampling), another noise level and another
compression. Each transform here draws one of those at random, on (1, S, S) float films in
[0, 1], so a model learns to ignore them.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F
from torchvision.transforms import v2


class RandomGamma(torch.nn.Module):
    """x ** gamma with log(gamma) uniform in [-log(g), log(g)]: a different tone curve."""

    def __init__(self, max_gamma: float, p: float = 0.5) -> None:
        super().__init__()
        self.log_max, self.p = math.log(max(max_gamma, 1.0)), p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p or self.log_max == 0.0:
            return image
        gamma = math.exp(float(torch.empty(()).uniform_(-self.log_max, self.log_max)))
        return image.clamp(0.0, 1.0).pow(gamma)


class RandomEqualize(torch.nn.Module):
    """Histogram equalisation blended with the film (strength uniform in [0, 1])."""

    def __init__(self, p: float = 0.2) -> None:
        super().__init__()
        self.p = p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return image
        as_uint8 = (image.clamp(0.0, 1.0) * 255).round().to(torch.uint8)
        equalized = v2.functional.equalize(as_uint8).to(image.dtype) / 255.0
        strength = float(torch.rand(()))
        return torch.lerp(image, equalized, strength)


class RandomBlur(torch.nn.Module):
    """Gaussian blur with sigma uniform in [0.1, max_sigma] pixels: a softer detector."""

    def __init__(self, max_sigma: float, p: float = 0.3) -> None:
        super().__init__()
        self.max_sigma, self.p = max_sigma, p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p or self.max_sigma <= 0.1:
            return image
        sigma = float(torch.empty(()).uniform_(0.1, self.max_sigma))
        kernel = 2 * math.ceil(3 * sigma) + 1
        return v2.functional.gaussian_blur(image, [kernel, kernel], [sigma, sigma])


class RandomResample(torch.nn.Module):
    """Down-sample by a factor in [min_factor, 1], then back: a lower-resolution original."""

    def __init__(self, min_factor: float, p: float = 0.3) -> None:
        super().__init__()
        self.min_factor, self.p = min_factor, p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p or self.min_factor >= 1.0:
            return image
        factor = float(torch.empty(()).uniform_(self.min_factor, 1.0))
        h, w = image.shape[-2:]
        small = (max(8, round(h * factor)), max(8, round(w * factor)))
        x = F.interpolate(image[None], size=small, mode="area")
        return F.interpolate(x, size=(h, w), mode="bilinear", align_corners=False)[0]


class RandomNoise(torch.nn.Module):
    """Additive Gaussian noise with a standard deviation uniform in [0, max_std]."""

    def __init__(self, max_std: float, p: float = 0.3) -> None:
        super().__init__()
        self.max_std, self.p = max_std, p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p or self.max_std <= 0.0:
            return image
        std = float(torch.empty(()).uniform_(0.0, self.max_std))
        return image + std * torch.randn_like(image)


class RandomJpeg(torch.nn.Module):
    """JPEG compression at a quality uniform in [min_quality, 95]: a film stored lossy."""

    def __init__(self, min_quality: int, p: float = 0.3) -> None:
        super().__init__()
        self.jpeg = v2.JPEG(quality=(int(min_quality), 95))
        self.p = p

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if torch.rand(()) >= self.p:
            return image
        as_uint8 = (image.clamp(0.0, 1.0) * 255).round().to(torch.uint8)
        return self.jpeg(as_uint8).to(image.dtype) / 255.0


SCANNER_KEYS = ("gamma", "equalize", "blur", "resample", "noise", "jpeg")


def scanner_steps(
    gamma: float = 0.0,
    equalize: float = 0.0,
    blur: float = 0.0,
    resample: float = 0.0,
    noise: float = 0.0,
    jpeg: int = 0,
) -> list[torch.nn.Module]:
    """The enabled scanner transforms, in acquisition order; 0 turns each one off.

    gamma: largest gamma (e.g. 1.5 draws gamma in [1/1.5, 1.5]); equalize: probability of
    a blended histogram equalisation; blur: largest sigma in pixels; resample: smallest
    down-sampling factor (e.g. 0.5); noise: largest noise std; jpeg: lowest JPEG quality.
    """
    steps: list[torch.nn.Module] = []
    if gamma:
        steps.append(RandomGamma(gamma))
    if equalize:
        steps.append(RandomEqualize(p=equalize))
    if resample:
        steps.append(RandomResample(resample))
    if blur:
        steps.append(RandomBlur(blur))
    if noise:
        steps.append(RandomNoise(noise))
    if jpeg:
        steps.append(RandomJpeg(jpeg))
    return steps
