"""Heat map over the film: a colour overlay at the film's own size, box outlines, PNG out."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from cxrkit.explain.boxes import Box


def overlay_heatmap(
    image: np.ndarray,
    heatmap: np.ndarray,
    alpha: float = 0.45,
    colormap: str = "jet",
    min_heat: float = 0.1,
) -> np.ndarray:
    """RGB uint8 (H, W, 3): the gray film with the heat map blended on top in colour.

    The blend weight grows with the heat (`alpha * heat`, zero below `min_heat`), so cold
    areas show the film untouched and hot areas are clearly coloured.
    """
    from matplotlib import colormaps

    film = np.clip(np.asarray(image, np.float32), 0, 1)
    heat = np.clip(np.asarray(heatmap, np.float32), 0, 1)
    if film.shape != heat.shape:
        raise ValueError(f"film {film.shape} and heat map {heat.shape} differ in size")
    colour = colormaps[colormap](heat)[..., :3].astype(np.float32)
    weight = (alpha * heat * (heat >= min_heat))[..., None]
    rgb = film[..., None] * (1 - weight) + colour * weight
    return np.round(rgb * 255).astype(np.uint8)


def draw_boxes(
    rgb: np.ndarray, boxes: Sequence[Box], colour: tuple[int, int, int] = (255, 255, 255)
) -> np.ndarray:
    """A copy of an RGB image with box outlines (line width scaled to the image size)."""
    img = Image.fromarray(rgb)
    draw = ImageDraw.Draw(img)
    width = max(1, round(max(rgb.shape[:2]) / 300))
    for b in boxes:
        draw.rectangle([b.x0, b.y0, b.x1 - 1, b.y1 - 1], outline=colour, width=width)
    return np.asarray(img)


def save_png(rgb: np.ndarray, path: str | Path) -> Path:
    """Write an RGB uint8 array as PNG (folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rgb).save(path)
    return path
