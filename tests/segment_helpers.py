"""Synthetic lung-mask sets for segment tests: small films with a known mask convention."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def synthetic_annotator(root: Path, n: int, offset: int, empty: int | None = None) -> Path:
    """Films with two dark 'lungs' on a bright body; this annotator's masks grown by `offset`
    px; film `empty` gets an empty mask (a missing annotation)."""
    from PIL import Image
    from scipy import ndimage

    rng = np.random.default_rng(0)
    (root / "images").mkdir(parents=True)
    (root / "masks").mkdir()
    yy, xx = np.mgrid[0:64, 0:64]
    rows = []
    for i in range(n):
        mask = np.zeros((64, 64), bool)
        for cx in (20, 44):
            cy, ry = 32 + rng.integers(-4, 5), 18 + rng.integers(-3, 4)
            mask |= ((yy - cy) / ry) ** 2 + ((xx - cx) / 9) ** 2 <= 1
        film = np.where(mask, 0.25, 0.8) + rng.normal(0, 0.03, (64, 64))
        Image.fromarray((np.clip(film, 0, 1) * 255).astype(np.uint8)).save(root / f"images/{i}.png")
        drawn = ndimage.binary_dilation(mask, iterations=offset) if offset else mask
        drawn = np.zeros_like(mask) if i == empty else drawn
        Image.fromarray(drawn.astype(np.uint8) * 255).save(root / f"masks/{i}.png")
        rows.append(f"images/{i}.png,masks/{i}.png,p{i},PA")
    (root / "labels.csv").write_text("path,mask,patient_id,view\n" + "\n".join(rows) + "\n")
    return root
