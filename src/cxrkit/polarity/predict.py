"""Check and fix film polarity for files on disk: batched reads, one row per film."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.errors import ImageReadError, ModelOutputError
from cxrkit.io import read_image
from cxrkit.polarity.model import (
    PolarityModel,
    load_polarity_model,
    polarity_of,
    require_valid_row,
    view_of,
)


def polarity_row(p: np.ndarray, model: PolarityModel) -> dict[str, Any]:
    """`polarity`, its `probability`, `not_cxr` probability, `inverted` (sure negative),
    `view` ('frontal' | 'lateral') and `p_lateral`. A row that is not finite probabilities
    in [0, 1] raises `ModelOutputError`."""
    p = require_valid_row(p)
    polarity, prob = polarity_of(p)
    view, p_lateral = view_of(p, model)
    return {
        "polarity": polarity,
        "probability": prob,
        "not_cxr": float(p[2]),
        "inverted": polarity == "negative" and prob >= model.fix_threshold,
        "view": view,
        "p_lateral": p_lateral,
    }


def check_paths(
    paths: Sequence[str | os.PathLike[str]],
    model: PolarityModel | None = None,
    batch_size: int = 256,
    num_workers: int = 2,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one row per path, in order: `path` plus `polarity_row` fields, or `error`.

    Films are decoded in `num_workers` processes at reduced size where the format allows
    (`cxrkit.polarity.decode`); with `cache_dir`, through the decode cache.
    """
    from cxrkit.polarity.decode import small_film_batches

    model = model or load_polarity_model()
    paths = [Path(p) for p in paths]
    batches = small_film_batches(
        paths,
        model.input_size,
        batch_size=batch_size,
        num_workers=num_workers,
        cache_dir=cache_dir,
    )
    for batch in batches:
        rows: dict[int, dict[str, Any]] = {
            i: {"path": str(paths[i]), "error": err} for i, err in batch["errors"]
        }
        if batch["films"] is not None:
            for i, p in zip(batch["index"], model.probs(batch["films"]), strict=True):
                rows[i] = {"path": str(paths[i]), **_row_or_error(p, model)}
        for i in batch["order"]:
            yield rows[i]


def _row_or_error(p: np.ndarray, model: PolarityModel) -> dict[str, Any]:
    try:
        return polarity_row(p, model)
    except ModelOutputError as exc:  # one broken output must not stop the batch
        return {"error": str(exc)}


def invert_film(image: np.ndarray) -> np.ndarray:
    """The film with its gray levels reversed (1 - x)."""
    return (1.0 - np.asarray(image, dtype=np.float32)).astype(np.float32)


def write_png(path: str | Path, image: np.ndarray, bit_depth: int = 8) -> Path:
    """Write a float film in [0, 1] as 8-bit or (bit_depth > 8) 16-bit grayscale PNG."""
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.clip(np.asarray(image, np.float32), 0, 1)
    if bit_depth > 8:
        Image.fromarray(np.round(arr * 65535).astype(np.uint16)).save(path)
    else:
        Image.fromarray(np.round(arr * 255).astype(np.uint8)).save(path)
    return path


def fix_paths(
    paths: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    model: PolarityModel | None = None,
    threshold: float = 0.5,
    names: Sequence[str | os.PathLike[str]] | None = None,
) -> list[dict[str, Any]]:
    """Write a corrected copy of every film into `out_dir`; returns one row per film.

    Films judged negative with probability >= `threshold` are inverted and written as
    PNG (16-bit when the source has more than 8 bits); the others are copied byte for byte.
    `names` are the output paths relative to `out_dir` (default: each file's name).
    """
    model = model or load_polarity_model()
    out = Path(out_dir)
    rows = []
    names = list(names) if names is not None else [Path(p).name for p in paths]
    for src, rel in zip((Path(p) for p in paths), (Path(n) for n in names), strict=True):
        row: dict[str, Any] = {"path": str(src)}
        try:
            image, meta = read_image(src)
        except ImageReadError as exc:
            rows.append({**row, "error": exc.reason})
            continue
        p = model.probs(model.prepare(image)[None])[0]
        row.update(_row_or_error(p, model))
        if "error" in row:  # no verdict: neither inverted nor passed on as checked
            rows.append(row)
            continue
        if row["polarity"] == "negative" and row["probability"] >= threshold:
            target = write_png(out / rel.with_suffix(".png"), invert_film(image), meta.bit_depth)
            row["action"] = "inverted"
        else:
            target = out / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, target)
            row["action"] = "copied"
        row["out"] = str(target)
        rows.append(row)
    return rows


def screen_films(films: np.ndarray, model: PolarityModel | None = None) -> list[dict[str, Any]]:
    """`polarity_row` for films already squashed to the model's input size (N, S, S)."""
    model = model or load_polarity_model()
    return [polarity_row(p, model) for p in model.probs(films)]
