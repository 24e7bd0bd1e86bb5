"""Batched scanner-like variations of films for polarity training: crop, borders, text, tone."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from cxrkit.polarity.net import NEGATIVE, POSITIVE


def random_views(
    images: torch.Tensor,
    out_size: int,
    gen: torch.Generator,
    scale: tuple[float, float] = (0.7, 1.0),
    max_rotate_deg: float = 10.0,
    max_shift: float = 0.08,
) -> torch.Tensor:
    """Random crop / zoom / aspect / rotation / flip of (B, 1, H, W) images to `out_size`.

    `scale` is the side of the crop as a fraction of the image; `max_shift` < 0 lets the
    crop sit anywhere. Areas from outside the image are filled with a random per-image gray
    level (black, white or in between).
    """
    b = images.shape[0]
    u = lambda lo, hi: torch.empty(b).uniform_(lo, hi, generator=gen)  # noqa: E731
    side = u(*scale)
    aspect = torch.exp(u(-0.15, 0.15))
    angle = u(-max_rotate_deg, max_rotate_deg) * math.pi / 180
    flip = torch.where(torch.rand(b, generator=gen) < 0.5, -1.0, 1.0)
    sx, sy = side * aspect.sqrt() * flip, side / aspect.sqrt()
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = sx * cos, -sy * sin
    theta[:, 1, 0], theta[:, 1, 1] = sx * sin, sy * cos
    if max_shift < 0:  # anywhere: the crop may sit at any place inside the image
        reach_x, reach_y = (1 - sx.abs()).clamp(min=0), (1 - sy.abs()).clamp(min=0)
        theta[:, 0, 2] = (torch.rand(b, generator=gen) * 2 - 1) * reach_x
        theta[:, 1, 2] = (torch.rand(b, generator=gen) * 2 - 1) * reach_y
    else:
        theta[:, 0, 2] = u(-max_shift, max_shift)
        theta[:, 1, 2] = u(-max_shift, max_shift)
    grid = F.affine_grid(theta, [b, 1, out_size, out_size], align_corners=False)
    fill = _pick(gen, b, (0.0, 1.0), p_mid=0.4).view(b, 1, 1, 1)
    out = F.grid_sample(images - fill, grid, mode="bilinear", align_corners=False) + fill
    return out.clamp(0.0, 1.0)


def _pick(gen: torch.Generator, b: int, ends: tuple[float, float], p_mid: float) -> torch.Tensor:
    """Per-image value: one of the two `ends` at random, or a uniform value with prob p_mid."""
    end = torch.where(torch.rand(b, generator=gen) < 0.5, ends[0], ends[1])
    mid = torch.rand(b, generator=gen)
    return torch.where(torch.rand(b, generator=gen) < p_mid, mid, end)


def add_borders(x: torch.Tensor, gen: torch.Generator, p: float = 0.35) -> torch.Tensor:
    """Collimation / padding bands of random width and gray level on random sides."""
    b, _, h, w = x.shape
    on = torch.rand(b, generator=gen) < p
    if not on.any():
        return x
    x = x.clone()
    colour = _pick(gen, b, (0.0, 1.0), p_mid=0.3)
    widths = (torch.rand(b, 4, generator=gen) * 0.2 * h).long()
    widths = widths * (torch.rand(b, 4, generator=gen) < 0.5)
    for i in torch.nonzero(on).flatten().tolist():
        top, bottom, left, right = (int(v) for v in widths[i])
        c = float(colour[i])
        x[i, :, :top] = c
        x[i, :, h - bottom :] = c
        x[i, :, :, :left] = c
        x[i, :, :, w - right :] = c
    return x


def stamp_text(
    x: torch.Tensor, stamps: torch.Tensor, gen: torch.Generator, p: float = 0.4
) -> torch.Tensor:
    """Burn in a random text/marker stamp (alpha masks (K, S, S)) in a random gray level."""
    b = x.shape[0]
    on = torch.rand(b, generator=gen) < p
    if not on.any() or stamps.numel() == 0:
        return x
    pick = torch.randint(len(stamps), (b,), generator=gen)
    alpha = stamps[pick].unsqueeze(1)
    if alpha.shape[-1] != x.shape[-1]:
        alpha = F.interpolate(alpha, size=x.shape[-2:], mode="bilinear", align_corners=False)
    if torch.rand(1, generator=gen).item() < 0.5:  # flip the stamp set half the time
        alpha = alpha.flip(-1)
    alpha = alpha * on.view(b, 1, 1, 1)
    colour = _pick(gen, b, (0.0, 1.0), p_mid=0.2).view(b, 1, 1, 1)
    return x * (1 - alpha) + colour * alpha


def tone(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Gamma, window/level, contrast compression and occasional histogram equalisation."""
    b = x.shape[0]
    u = lambda lo, hi: torch.empty(b, 1, 1, 1).uniform_(lo, hi, generator=gen)  # noqa: E731
    x = x.clamp(0, 1) ** torch.exp(u(-0.8, 0.8))
    lo, hi = u(-0.1, 0.25), u(0.75, 1.1)
    x = ((x - lo) / (hi - lo)).clamp(0, 1)
    a, c = u(0.0, 0.3), u(0.6, 1.0)
    squeeze = torch.rand(b, 1, 1, 1, generator=gen) < 0.3
    x = torch.where(squeeze, a + (c - a) * x, x)
    eq = torch.rand(b, generator=gen) < 0.12
    if eq.any():
        flat = x[eq].flatten(1)
        ranks = flat.argsort(1).argsort(1).float() / (flat.shape[1] - 1)
        x = x.clone()
        x[eq] = ranks.view(-1, *x.shape[1:])
    return x


def degrade(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Blur, low resolution, noise and coarse quantisation, each at random."""
    b, _, h, w = x.shape
    r = lambda: torch.rand(b, 1, 1, 1, generator=gen)  # noqa: E731
    passes = int(torch.randint(1, 3, (1,), generator=gen))
    x = torch.where(r() < 0.3, box_blur(x, passes), x)
    low = int(torch.randint(12, max(13, h // 2), (1,), generator=gen))
    small = F.interpolate(x, size=(low, low), mode="area")
    lowres = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
    x = torch.where(r() < 0.15, lowres, x)
    sigma = torch.empty(b, 1, 1, 1).uniform_(0.0, 0.06, generator=gen) * (r() < 0.5)
    x = x + sigma * torch.randn(x.shape, generator=gen)
    levels = torch.where(r() < 0.1, 16.0, 255.0)
    return (torch.round(x.clamp(0, 1) * levels) / levels).clamp(0, 1)


def box_blur(x: torch.Tensor, passes: int = 1) -> torch.Tensor:
    """3x3 mean filter applied `passes` times (about a Gaussian of sigma 0.8 * sqrt(passes))."""
    for _ in range(passes):
        x = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return x


def film_batch(
    films: torch.Tensor,
    stamps: torch.Tensor,
    out_size: int,
    gen: torch.Generator,
    plain: torch.Tensor | None = None,
    use_plain: torch.Tensor | None = None,
    scale: tuple[float, float] = (0.7, 1.0),
    max_rotate_deg: float = 10.0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augmented films, half of them inverted at random; returns (x, polarity labels).

    Where `use_plain` is set, the film comes from `plain` (already at `out_size`, as
    read and squashed) instead of a random crop/rotation of `films`. `scale` and
    `max_rotate_deg` set the crop and rotation (wider for the few lateral films).
    """
    x = random_views(films, out_size, gen, scale=scale, max_rotate_deg=max_rotate_deg)
    if plain is not None and use_plain is not None:
        flipped = torch.where(torch.rand(len(x), generator=gen) < 0.5, -1, 1)
        plain = torch.where(flipped.view(-1, 1, 1, 1) < 0, plain.flip(-1), plain)
        x = torch.where(use_plain.view(-1, 1, 1, 1), plain, x)
    x = add_borders(x, gen)
    x = stamp_text(x, stamps, gen)
    inverted = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(inverted.view(-1, 1, 1, 1), 1.0 - x, x)
    x = degrade(tone(x, gen), gen)
    y = torch.where(inverted, NEGATIVE, POSITIVE)
    return x, y


def other_batch(
    images: torch.Tensor, stamps: torch.Tensor, out_size: int, gen: torch.Generator
) -> torch.Tensor:
    """Non-film images with the same variations (and random inversion) as the films."""
    x = random_views(images, out_size, gen, scale=(0.6, 1.0), max_rotate_deg=15)
    x = add_borders(x, gen, p=0.2)
    x = stamp_text(x, stamps, gen, p=0.2)
    inverted = torch.rand(x.shape[0], generator=gen) < 0.3
    x = torch.where(inverted.view(-1, 1, 1, 1), 1.0 - x, x)
    return degrade(tone(x, gen), gen)


def fragment_batch(
    films: torch.Tensor, stamps: torch.Tensor, out_size: int, gen: torch.Generator
) -> torch.Tensor:
    """Small pieces (8-35% of the side) of films, anywhere on them: not a chest film."""
    x = random_views(films, out_size, gen, scale=(0.08, 0.35), max_rotate_deg=10, max_shift=-1)
    x = stamp_text(x, stamps, gen, p=0.1)
    inverted = torch.rand(x.shape[0], generator=gen) < 0.5
    x = torch.where(inverted.view(-1, 1, 1, 1), 1.0 - x, x)
    return degrade(tone(x, gen), gen)


def text_stamps(n: int, size: int, seed: int) -> torch.Tensor:
    """(n, size, size) alpha masks of scanner-style burned-in labels (L/R, AP, dates, markers)."""
    from PIL import Image, ImageDraw, ImageFont

    rng = np.random.default_rng(seed)
    words = ["L", "R", "AP", "PA", "PORTABLE", "SUPINE", "ERECT", "MOBILE", "LT", "RT", "INSP"]
    out = np.zeros((n, size, size), np.float32)
    for i in range(n):
        canvas = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(1, 4))):
            font = ImageFont.load_default(size=int(rng.integers(size // 16, size // 5)))
            kind = rng.random()
            if kind < 0.5:
                text = str(rng.choice(words))
            elif kind < 0.8:
                day, month = rng.integers(1, 29), rng.integers(1, 13)
                text = f"{day:02d}/{month:02d}/{rng.integers(1990, 2025)}"
            else:
                text = "".join(rng.choice(list("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 "), 10))
            xy = (int(rng.integers(0, size * 3 // 4)), int(rng.integers(0, size * 7 // 8)))
            if rng.random() < 0.2:
                r = int(rng.integers(2, size // 12 + 3))
                draw.ellipse([xy[0], xy[1], xy[0] + 2 * r, xy[1] + 2 * r], fill=255)
            else:
                draw.text(xy, text, fill=255, font=font)
        out[i] = np.asarray(canvas, np.float32) / 255.0
    return torch.from_numpy(out)
