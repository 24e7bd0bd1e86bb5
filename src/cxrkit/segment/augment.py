"""Joint film + mask augmentation for lung U-Net training, batched in torch."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass
class SegAugment:
    """Random geometry (applied to film and mask alike) and intensity (film only).

    Geometry: horizontal flip, rotation, zoom with independent x/y stretch (so squashed
    films of any aspect ratio are covered), shear, shift, and a smooth elastic warp.
    Zoom > 1 acts as a random crop. Intensity: brightness, contrast, gamma, blur,
    low resolution (down- then up-sampling, like thumbnails), and Gaussian noise.
    """

    hflip: float = 0.5
    rotate_deg: float = 15.0
    zoom: tuple[float, float] = (0.75, 1.3)
    stretch: float = 0.15
    shear_deg: float = 6.0
    shift: float = 0.08
    elastic_p: float = 0.5
    elastic_px: float = 6.0
    brightness: float = 0.12
    contrast: tuple[float, float] = (0.7, 1.35)
    gamma: tuple[float, float] = (0.65, 1.6)
    blur_p: float = 0.3
    lowres_p: float = 0.2
    noise_p: float = 0.3
    noise_std: float = 0.03

    def to_dict(self) -> dict:
        """Plain-dict view for the model card."""
        return asdict(self)

    def __call__(
        self, film: torch.Tensor, mask: torch.Tensor, gen: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Augment (B, 1, H, W) films in [0, 1] and float masks in {0, 1}; returns new tensors."""
        film, mask = self._geometry(film, mask, gen)
        return self._intensity(film, gen), mask

    def _rand(self, n: int, lo: float, hi: float, gen: torch.Generator) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    def _geometry(self, film, mask, gen):
        b, _, h, w = film.shape
        angle = torch.deg2rad(self._rand(b, -self.rotate_deg, self.rotate_deg, gen))
        shear = torch.deg2rad(self._rand(b, -self.shear_deg, self.shear_deg, gen))
        zoom = torch.exp(self._rand(b, math.log(self.zoom[0]), math.log(self.zoom[1]), gen))
        stretch = torch.exp(self._rand(b, -self.stretch, self.stretch, gen))
        sx, sy = zoom * stretch, zoom / stretch
        flip = torch.where(torch.rand(b, generator=gen) < self.hflip, -1.0, 1.0)
        cos, sin, tan = torch.cos(angle), torch.sin(angle), torch.tan(shear)
        # Output -> input sampling matrix: inverse scale, then rotation and shear.
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0] = flip * cos / sx
        theta[:, 0, 1] = (-sin + tan * cos) / sx
        theta[:, 1, 0] = flip * sin / sy
        theta[:, 1, 1] = (cos + tan * sin) / sy
        theta[:, :, 2] = self._rand(2 * b, -2 * self.shift, 2 * self.shift, gen).view(b, 2)
        grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
        if self.elastic_p > 0:
            coarse = torch.randn(b, 2, 5, 5, generator=gen) * (2.0 * self.elastic_px / max(h, w))
            coarse *= (torch.rand(b, 1, 1, 1, generator=gen) < self.elastic_p).float()
            field = F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)
            grid = grid + field.permute(0, 2, 3, 1)
        film = F.grid_sample(film, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        mask = F.grid_sample(mask, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        return film, (mask > 0.5).float()

    def _intensity(self, film, gen):
        b, _, h, w = film.shape
        view = (b, 1, 1, 1)
        if self.lowres_p > 0:
            for i in torch.nonzero(torch.rand(b, generator=gen) < self.lowres_p).flatten():
                side = int(torch.randint(48, max(49, h // 2), (1,), generator=gen))
                small = F.interpolate(film[i : i + 1], size=(side, side), mode="area")
                film[i : i + 1] = F.interpolate(small, size=(h, w), mode="bilinear")
        if self.blur_p > 0:
            for i in torch.nonzero(torch.rand(b, generator=gen) < self.blur_p).flatten():
                film[i : i + 1] = _gaussian_blur(
                    film[i : i + 1], float(self._rand(1, 0.5, 1.8, gen))
                )
        mean = film.mean(dim=(2, 3), keepdim=True)
        contrast = self._rand(b, *self.contrast, gen).view(view)
        film = (film - mean) * contrast + mean
        film = film + self._rand(b, -self.brightness, self.brightness, gen).view(view)
        gamma = torch.exp(self._rand(b, math.log(self.gamma[0]), math.log(self.gamma[1]), gen))
        film = film.clamp(0.0, 1.0) ** gamma.view(view)
        if self.noise_p > 0:
            on = (torch.rand(view, generator=gen) < self.noise_p).float()
            film = film + on * self.noise_std * torch.randn(film.shape, generator=gen)
        return film.clamp(0.0, 1.0)


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    k = torch.exp(-(t**2) / (2 * sigma**2))
    k = k / k.sum()
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k.view(1, 1, 1, -1))
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"), k.view(1, 1, -1, 1))
