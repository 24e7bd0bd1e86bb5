"""Score a lung model against reference masks: per-film Dice/IoU/HD95, summaries, files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.data.splits import read_split_csv
from cxrkit.data.table import LabelTable
from cxrkit.errors import CxrkitError
from cxrkit.segment.data import load_mask_table, read_pair
from cxrkit.segment.infer import LungModel, load_lung_model, predict_probs, probs_to_mask
from cxrkit.segment.metrics import mask_scores, summarize_scores

CSV_FIELDS = (
    "path",
    "patient_id",
    "dice",
    "iou",
    "hd95",
    "height",
    "width",
    "area_true",
    "area_pred",
)


def score_films(
    model: LungModel,
    pairs: list[tuple[np.ndarray, np.ndarray]],
    names: list[str],
    patients: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One row per film: path, Dice, IoU, HD95 (pixels, original size) and mask areas."""
    probs = predict_probs(model, [film for film, _ in pairs])
    rows = []
    for i, ((film, truth), p) in enumerate(zip(pairs, probs, strict=True)):
        pred = probs_to_mask(model, p)
        rows.append(
            {
                "path": names[i],
                "patient_id": patients[i] if patients else "",
                **mask_scores(pred, truth),
                "height": film.shape[0],
                "width": film.shape[1],
                "area_true": float(truth.mean()),
                "area_pred": float(pred.mean()),
            }
        )
    return rows


def split_indices(
    table: LabelTable, split: str | None, split_file: str | Path | None
) -> np.ndarray:
    """Record indices of one split of `split_file`, or every record when `split` is None."""
    if split is None:
        return np.arange(len(table))
    if split_file is None:
        raise CxrkitError("`split` needs `split_file` (the split.csv of the training run)")
    parts = read_split_csv(split_file, table)
    if split not in parts:
        raise CxrkitError(f"split {split!r} not in {split_file} (has {sorted(parts)})")
    return parts[split]


def evaluate_lung_model(
    model: str | Path | LungModel | None,
    data: str | Path,
    out_dir: str | Path | None = None,
    *,
    split: str | None = None,
    split_file: str | Path | None = None,
    worst: int = 5,
) -> dict[str, Any]:
    """Score `model` on the masked films of `data` (one split or all); returns the summary.

    With `out_dir`, writes `metrics.json` (mean/median/min/max and the worst films) and
    `per_film.csv`. For a model with a `split.csv` beside it, `split` alone uses that file.
    """
    lung = model if isinstance(model, LungModel) else load_lung_model(model)
    if split is not None and split_file is None and (lung.path.parent / "split.csv").is_file():
        split_file = lung.path.parent / "split.csv"
    table = load_mask_table(data)
    idx = split_indices(table, split, split_file)
    if len(idx) == 0:
        raise CxrkitError(f"{data}: no films with masks in split {split!r}")
    pairs = [read_pair(table, int(i)) for i in idx]
    names = [table.relpath(int(i)) for i in idx]
    patients = [table.records[int(i)].patient_id for i in idx]
    rows = score_films(lung, pairs, names, patients)
    summary = {
        "model": str(lung.path),
        "data": str(Path(data).resolve()),
        "split": split or "all",
        "split_file": str(split_file) if split_file else None,
        **summarize_scores(rows, worst),
    }
    if out_dir is not None:
        write_results(out_dir, summary, rows)
    return summary


def write_results(out_dir: str | Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """`metrics.json` and `per_film.csv` under `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(_jsonable(summary), indent=2))
    with (out / "per_film.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_FIELDS, extrasaction="ignore")
        writer.writeheader()
        for r in rows:
            writer.writerow({k: (f"{v:.5f}" if isinstance(v, float) else v) for k, v in r.items()})


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    return obj
