"""Inputs for the dataset-adapter tests: the real label files inside the torchxrayvision
wheel (a test dependency, read in place, never copied into the repository), excerpts of
them written to tmp at test time, and tiny generated films named as each set names them."""

from __future__ import annotations

import csv
import gzip
import importlib.util
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def xrv_data_dir() -> Path:
    """torchxrayvision/data/ of the installed wheel (without importing the package)."""
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torchxrayvision (a dev dependency) is not installed")
    path = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not path.is_dir():
        pytest.skip("this torchxrayvision wheel ships no data/ folder")
    return path


def link(src: Path, folder: Path, name: str | None = None) -> Path:
    """Symlink a real label file into a test root (no copy)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or src.name)
    target.symlink_to(src)
    return target


def excerpt(src: Path, target: Path, rows: int) -> list[dict[str, str]]:
    """The header and first `rows` records of a (gzipped) real CSV, written as plain CSV."""
    opener = gzip.open if src.suffix == ".gz" else open
    with opener(src, "rt", newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        body = [r for _, r in zip(range(rows), reader, strict=False)]
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(body)
    return [dict(zip(header, r, strict=False)) for r in body]


def film(path: Path, size: int = 48, seed: int = 0, fmt: str = "PNG") -> Path:
    """A small 8-bit grayscale film (a bright disc on noise) under `path`."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    disc = ((yy - size / 2) ** 2 + (xx - size / 2 - seed % 7) ** 2) < (size / 3 + seed % 5) ** 2
    img = (rng.integers(0, 60, (size, size)) + disc * (120 + 10 * (seed % 3))).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt)
    path.write_bytes(buf.getvalue())
    return path


def mask(path: Path, size: int = 48, left: bool = True) -> Path:
    """A 0/255 half-lung mask (left or right half of a box)."""
    arr = np.zeros((size, size), dtype=np.uint8)
    if left:
        arr[8:40, 6:22] = 255
    else:
        arr[8:40, 26:42] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return path
