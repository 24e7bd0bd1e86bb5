"""A film-polarity training set: films from labelled datasets, a random half inverted."""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.data.table import LabelTable, load_table
from cxrkit.errors import CxrkitError, ImageReadError
from cxrkit.io.atomic import atomic_write_text

log = logging.getLogger("cxrkit.data")

POSITIVE = "positive"  # as read: bright bone, dark air (MONOCHROME2), the normal display
NEGATIVE = "negative"  # inverted: dark bone, bright air
COLUMNS = ("path", "label", "patient_id", "source", "original")
MANIFEST = "polarity_set.json"


def make_polarity_set(
    sources: Sequence[str | Path],
    out: str | Path,
    *,
    size: int = 128,
    per_source: int | None = None,
    seed: int = 0,
    label_column: str = "label",
    resize_mode: str = "squash",
    overwrite: bool = False,
    show_progress: bool = False,
) -> dict[str, Any]:
    """Write `out/images/<source>/<n>.png` and `out/labels.csv` for a polarity classifier.

    Each source is a labels.csv, a folder holding one, or class folders (read with
    `load_table`; `label_column` only decides which rows are usable). From each source
    `per_source` films (all when None) are drawn at random, read as displayed (MONOCHROME1
    DICOMs are already flipped by the reader), resized to `size`, and exactly half of them
    (per source, so source and label do not go together) inverted. Labels are `positive`
    (as read) and `negative` (inverted); patient ids are prefixed with the source name so
    `make_splits` stays patient-disjoint across sources. The `original` column names the
    source film. Returns a summary (also written to `out/polarity_set.json`).
    """
    from cxrkit.io import read_image, resize_film
    from cxrkit.io.resize import RESIZE_MODES

    if not sources:
        raise CxrkitError("polarity set: give at least one source dataset")
    if size < 8:
        raise CxrkitError(f"polarity set: size must be >= 8, got {size}")
    if per_source is not None and per_source < 1:
        raise CxrkitError(f"polarity set: per_source must be >= 1, got {per_source}")
    if resize_mode not in RESIZE_MODES:
        raise CxrkitError(f"polarity set: resize_mode must be one of {RESIZE_MODES}")
    out = Path(out)
    if out.is_file():
        raise CxrkitError(f"{out}: is a file; give a folder for the polarity set")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise CxrkitError(f"{out}: folder is not empty (pass overwrite=True to write into it)")
    rng = np.random.default_rng(seed)
    tables = _load_sources(sources, label_column)

    rows: list[dict[str, str]] = []
    skipped: list[tuple[str, str]] = []
    per_source_counts: dict[str, dict[str, int]] = {}
    plan = []
    for name, table in tables:
        idx = np.arange(len(table))
        if per_source is not None and per_source < len(idx):
            idx = np.sort(rng.choice(idx, size=per_source, replace=False))
        inverted = np.zeros(len(idx), dtype=bool)
        inverted[rng.permutation(len(idx))[: len(idx) // 2]] = True
        plan.extend(
            (name, table, int(i), bool(inv), k)
            for k, (i, inv) in enumerate(zip(idx, inverted, strict=True))
        )
        per_source_counts[name] = {POSITIVE: 0, NEGATIVE: 0}

    items = plan
    if show_progress:
        from rich.progress import track

        items = track(plan, description="polarity set", transient=True)
    from PIL import Image

    for name, table, i, inv, k in items:
        rec = table.records[i]
        try:
            image, _meta = read_image(rec.path)
        except ImageReadError as exc:
            skipped.append((str(rec.path), exc.reason))
            continue
        film = resize_film(image, size, mode=resize_mode)
        if inv:
            film = 1.0 - film
        rel = f"images/{name}/{k:06d}.png"
        target = out / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        pixels = np.round(np.clip(film, 0.0, 1.0) * 255.0).astype(np.uint8)
        Image.fromarray(pixels).save(target)  # uint8 (h, w): 8-bit grey
        label = NEGATIVE if inv else POSITIVE
        per_source_counts[name][label] += 1
        rows.append(
            {
                "path": rel,
                "label": label,
                "patient_id": f"{name}:{rec.patient_id}",
                "source": name,
                "original": str(rec.path),
            }
        )
    if not rows:
        raise CxrkitError(f"polarity set: no readable films in {', '.join(map(str, sources))}")
    out.mkdir(parents=True, exist_ok=True)
    with (out / "labels.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    summary = {
        "out": str(out),
        "n_films": len(rows),
        "size": size,
        "resize_mode": resize_mode,
        "seed": seed,
        "per_source": per_source,
        "labels": {
            POSITIVE: sum(r["label"] == POSITIVE for r in rows),
            NEGATIVE: sum(r["label"] == NEGATIVE for r in rows),
        },
        "sources": {
            name: {"data": str(table.root), **per_source_counts[name]} for name, table in tables
        },
        "skipped": [{"path": p, "reason": r} for p, r in skipped],
    }
    atomic_write_text(out / MANIFEST, json.dumps(summary, indent=2) + "\n")
    if skipped:
        log.warning("polarity set: %d unreadable film(s) skipped (first: %s)", *_first(skipped))
    return summary


def _load_sources(sources: Sequence[str | Path], label_column: str) -> list[tuple[str, LabelTable]]:
    """Each source's table, named after its folder (made unique with -2, -3, ...)."""
    tables: list[tuple[str, LabelTable]] = []
    used: set[str] = set()
    for src in sources:
        table = load_table(src, label_column=label_column)
        base = _safe_name(table.root.name) or "source"
        name, n = base, 1
        while name in used:
            n += 1
            name = f"{base}-{n}"
        used.add(name)
        tables.append((name, table))
    return tables


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip("._")


def _first(skipped: list[tuple[str, str]]) -> tuple[int, str]:
    return len(skipped), f"{skipped[0][0]}: {skipped[0][1]}"
