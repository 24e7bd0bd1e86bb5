"""Score a lung model against reference masks: per-film Dice/IoU/HD95, summaries, files."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.data.identity import data_record
from cxrkit.errors import CxrkitError
from cxrkit.io.atomic import atomic_write_text
from cxrkit.segment.infer import LungModel, load_lung_model, predict_probs, probs_to_mask
from cxrkit.segment.metrics import dice, mask_scores, summarize_scores
from cxrkit.segment.sets import MaskFilm, doubly_masked, load_mask_sets, read_set_split

CSV_FIELDS = (
    "set",
    "path",
    "patient_id",
    "view",
    "reference",
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


def score_mask_films(
    model: LungModel,
    films: list[MaskFilm],
    pairs: list[tuple[np.ndarray, np.ndarray]] | None = None,
) -> list[dict[str, Any]]:
    """`score_films` rows for films of mask sets, with their set, view and view group.

    `pairs` are the decoded (film, mask) of `films` when the caller has them already.
    """
    pairs = pairs if pairs is not None else [f.read() for f in films]
    rows = score_films(model, pairs, [f.path for f in films], [f.patient_id for f in films])
    for row, f, (_, truth) in zip(rows, films, pairs, strict=True):
        row.update({"set": f.set_name, "view": f.view, "view_group": f.view_group})
        row["reference"] = "mask" if truth.any() else "empty"
    return rows


def group_summaries(rows: list[dict[str, Any]], worst: int = 5) -> dict[str, Any]:
    """The overall `summarize_scores` plus `groups`: per set, per view group (frontal /
    lateral), per set and view group (`set/view`), and per raw view (PA, AP, L, ...).

    Films whose reference mask is empty (`reference` "empty": a missing annotation, since
    every chest film has lungs) are not scored; `no_reference` lists them with the lung
    fraction the model predicted.
    """
    unscored = [r for r in rows if r.get("reference") == "empty"]
    rows = [r for r in rows if r.get("reference") != "empty"]
    no_reference = [
        {k: r[k] for k in ("set", "path", "view", "area_pred") if k in r} for r in unscored
    ]
    keys = {
        "set": lambda r: r["set"],
        "view": lambda r: r["view_group"],
        "set_view": lambda r: f"{r['set']}/{r['view_group']}",
        "view_name": lambda r: r["view"] or "unknown",
    }
    groups: dict[str, dict[str, Any]] = {}
    for kind, key in keys.items():
        buckets: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            buckets.setdefault(key(r), []).append(r)
        groups[kind] = {k: summarize_scores(v, worst) for k, v in sorted(buckets.items())}
    return {**summarize_scores(rows, worst), "groups": groups, "no_reference": no_reference}


def annotator_agreement(
    films: list[MaskFilm], rows: list[dict[str, Any]], masks: list[np.ndarray]
) -> dict[str, Any]:
    """Inter-annotator Dice on films masked in two sets, beside the model's Dice to each.

    `rows` are `score_mask_films` rows and `masks` the reference masks, both in `films`
    order. A pair whose two films differ in size (the sets cropped the figure differently)
    is listed but left out of the agreement figures: its masks cannot be overlaid.
    """
    per_film, skipped = [], []
    for i, j in doubly_masked(films):
        a, b = films[i], films[j]
        if not masks[i].any() or not masks[j].any():
            continue  # an empty reference is a missing annotation, not a convention
        if masks[i].shape != masks[j].shape:
            skipped.append(
                f"{a.path} ({a.set_name} {masks[i].shape}, {b.set_name} {masks[j].shape})"
            )
            continue
        per_film.append(
            {
                "path": a.path,
                "patient_id": a.patient_id,
                "view": a.view_group,
                "sets": [a.set_name, b.set_name],
                "inter_annotator_dice": dice(masks[i], masks[j]),
                "model_dice": {a.set_name: rows[i]["dice"], b.set_name: rows[j]["dice"]},
            }
        )
    out: dict[str, Any] = {"n": len(per_film), "films": per_film, "not_comparable": skipped}
    if per_film:
        inter = np.array([p["inter_annotator_dice"] for p in per_film])
        out["inter_annotator"] = _stats(inter)
        out["model"] = {
            name: _stats(np.array([p["model_dice"][name] for p in per_film]))
            for name in per_film[0]["sets"]
        }
    return out


def _stats(values: np.ndarray) -> dict[str, float]:
    return {
        "mean": float(values.mean()),
        "median": float(np.median(values)),
        "min": float(values.min()),
    }


def evaluate_lung_model(
    model: str | Path | LungModel | None,
    data: str | Path | list[str | Path],
    out_dir: str | Path | None = None,
    *,
    split: str | None = None,
    split_file: str | Path | None = None,
    worst: int = 5,
    overlays: bool = True,
) -> dict[str, Any]:
    """Score `model` on the masked films of one or more sets (one split or all films).

    Returns (and with `out_dir` writes to `metrics.json`, with `per_film.csv`) the overall
    mean / median / worst Dice, IoU and HD95, the same per set, per view and per set and
    view, the `worst` films, and the inter-annotator agreement on films masked in two sets
    beside the model's Dice against each. With `out_dir` and `overlays`, the worst films
    are drawn to `out_dir/worst/` (reference and prediction contours). For a model with a
    `split.csv` beside it, `split` alone uses that file.
    """
    lung = model if isinstance(model, LungModel) else load_lung_model(model)
    if split is not None and split_file is None and (lung.path.parent / "split.csv").is_file():
        split_file = lung.path.parent / "split.csv"
    sources = [data] if isinstance(data, str | Path) else list(data)
    films = load_mask_sets(sources)
    if split is not None:
        if split_file is None:
            raise CxrkitError("`split` needs `split_file` (the split.csv of the training run)")
        parts = read_set_split(split_file, films)
        if split not in parts:
            raise CxrkitError(f"split {split!r} not in {split_file} (has {sorted(parts)})")
        films = [films[int(i)] for i in parts[split]]
    if not films:
        raise CxrkitError(f"no films with masks in split {split!r}")
    pairs = [f.read() for f in films]
    rows = score_mask_films(lung, films, pairs)
    summary = {
        "model": lung.path.name,
        "model_views": list(lung.views),
        "data": [data_record(s) for s in sources],
        "split": split or "all",
        "split_file": Path(split_file).name if split_file else None,
        **group_summaries(rows, worst),
        "annotators": annotator_agreement(films, rows, [m for _, m in pairs]),
    }
    if out_dir is not None:
        write_results(out_dir, summary, rows)
        if overlays:
            summary["overlays"] = write_worst_overlays(
                Path(out_dir) / "worst", lung, films, pairs, rows, worst
            )
    return summary


def write_worst_overlays(
    folder: Path,
    model: LungModel,
    films: list[MaskFilm],
    pairs: list[tuple[np.ndarray, np.ndarray]],
    rows: list[dict[str, Any]],
    worst: int = 5,
) -> list[str]:
    """Comparison PNGs of the `worst` films by Dice (rank, Dice, set and name in the file name)."""
    from cxrkit.segment.overlay import save_comparison_png

    scored = [i for i in range(len(rows)) if rows[i].get("reference") != "empty"]
    order = sorted(scored, key=lambda i: rows[i]["dice"])[:worst]
    written = []
    for rank, i in enumerate(order, 1):
        film, truth = pairs[i]
        pred = probs_to_mask(model, predict_probs(model, [film])[0])
        name = f"{rank}_{rows[i]['dice']:.3f}_{films[i].set_name}_{Path(films[i].path).stem}.png"
        save_comparison_png(folder / name, film, pred, truth)
        written.append(name)
    return written


def write_results(out_dir: str | Path, summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    """`metrics.json` and `per_film.csv` under `out_dir`."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(_jsonable(summary), indent=2))
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
