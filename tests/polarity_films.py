"""Shared helpers for the polarity and guard tests: a fixed sample of held-out shared films."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrkit.io import read_image
from cxrkit.polarity.films import FilmRef, assign_splits, discover

SETS = ("kermany_pneumonia", "nih1000", "covid_lungmasks", "samples")
WRONG_TAG = "Fake_MONOHR1.dcm"  # MONOCHROME2 pixels tagged MONOCHROME1: reads inverted


def held_out_films(shared_data: Path, per_source: dict[str, int]) -> list[FilmRef]:
    """Test-split films (patients the shipped model never saw), a fixed sample per source."""
    refs = assign_splits([r for s in SETS for r in discover(shared_data / s, [WRONG_TAG])])
    out: list[FilmRef] = []
    for source, n in per_source.items():
        mine = [r for r in refs if r.source == source and r.split == "test"]
        step = max(1, len(mine) // n)
        out.extend(mine[::step][:n])
    return out


def read_all(refs: list[FilmRef]) -> list[np.ndarray]:
    """Each film as `read_image` gives it (float (h, w) in [0, 1])."""
    return [read_image(r.path)[0] for r in refs]
