"""Score a saved model on labelled films (`evaluate_model`: all or one split, the report)
and on external sets beside its internal figures (`score_external`, `cxr train --external`).

The jobs of `cxr evaluate` and of training's external sets: they hold a `Classifier` and
use the metrics, thresholds and report of this package.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from cxrkit.classifier import Classifier
from cxrkit.classifier.dataset import CXRDataset, collate_skip_bad
from cxrkit.data.identity import dataset_name, set_fingerprint
from cxrkit.data.selection import selection_flag
from cxrkit.data.splits import read_split_csv
from cxrkit.data.table import LabelTable, load_table
from cxrkit.errors import CxrkitError
from cxrkit.evaluate.pipeline import FILES, evaluate_predictions
from cxrkit.evaluate.report import write_report
from cxrkit.evaluate.transfer import comparison_rows, headline, transfer_warnings
from cxrkit.io.atomic import atomic_write_text
from cxrkit.models.model_file import read_card
from cxrkit.progress import progress_lines

TRANSFER_FILE = "transfer.json"


def evaluate_model(
    model_path: str | Path,
    data: str | Path,
    out_dir: str | Path,
    *,
    split: str | None = None,
    split_file: str | Path | None = None,
    label_column: str | None = None,
    batch_size: int = 32,
    num_workers: int = 2,
    n_bootstrap: int = 1000,
    cache_dir: str | Path | None = None,
    device: str = "auto",
    external: Sequence[str | Path] = (),
    runtime: str = "torch",
) -> dict[str, Any]:
    """Predict `data` with the model's own preprocessing and thresholds; write the report.

    `runtime` is any of `Classifier.load`'s (torch, onnx, onnx-int8, openvino).

    The report puts the result beside the internal test figures kept in the model card;
    each `external` set is scored too (into `out_dir/external/NAME/`) and shown alongside.
    A set the card's `selection_sets` lists (by fingerprint) is marked "used for selection:
    optimistic" in metrics.json, the report and the printout.
    """
    if split_file is not None and not split:
        raise CxrkitError("`split_file` needs `split` (train, val or test)")
    if split and split_file is None:
        raise CxrkitError("`split` needs `split_file` (the split.csv written by `cxr train`)")
    clf = Classifier.load(model_path, runtime, device=device)
    card = clf.card
    table = load_table(
        data,
        label_column=label_column or card.label_column or "label",
        task=card.task,
        class_names=list(card.class_names),
    )
    indices = np.arange(len(table))
    if split and split_file is not None:
        table = _restrict_to_split_file(table, split_file)
        splits = read_split_csv(split_file, table)
        if split not in splits:
            raise CxrkitError(f"split {split!r} not in {split_file} (has {sorted(splits)})")
        indices = splits[split]
    pre = card.preprocessing
    ds = CXRDataset(  # the training films' reading, crop, resize and decode cache
        table,
        indices=indices,
        size=pre.size,
        resize_mode=pre.resize_mode,
        cache_dir=Path(cache_dir) / "decoded" if cache_dir else None,
        crop=pre.crop,
    )
    loader = DataLoader(
        ds, batch_size=batch_size, num_workers=num_workers, collate_fn=collate_skip_bad
    )
    probs, got = clf.batch_probs(  # the classifier's forward and card calibration
        progress_lines(loader, what=f"evaluate {dataset_name(data)}", unit="batches")
    )
    if len(got) == 0:
        raise CxrkitError(f"{data}: no readable films to evaluate")
    y = table.targets()[got]
    selection = selection_flag(card, set_fingerprint(data, table))
    title = f"cxrkit evaluation — {card.architecture} on {Path(data).name}" + (
        f" ({split})" if split else ""
    )
    metrics = evaluate_predictions(
        y,
        probs,
        list(card.class_names),
        card.task,
        out_dir,
        thresholds=list(card.thresholds) or None,
        title=title,
        model_card=card,
        n_bootstrap=n_bootstrap,
        selection=selection,
    )
    metrics["skipped_rows"] = len(table.skipped)
    metrics["unreadable_films"] = len(indices) - len(got)
    internal = (card.metrics or {}).get("test")
    if internal or external:
        score_external(
            model_path,
            (dataset_name(data) + (f" ({split})" if split else ""), metrics),
            external,
            out_dir,
            title=title,
            reference=("internal test split (model card)", internal) if internal else None,
            batch_size=batch_size,
            num_workers=num_workers,
            n_bootstrap=n_bootstrap,
            cache_dir=cache_dir,
            device=device,
            runtime=runtime,
        )
    return metrics


def score_external(
    model_path: str | Path,
    shown: tuple[str, Mapping[str, Any]],
    external: Sequence[str | Path],
    out_dir: str | Path,
    *,
    title: str,
    reference: tuple[str, Mapping[str, Any]] | None = None,
    **evaluate_kw: Any,
) -> list[dict[str, Any]]:
    """Evaluate `model_path` on each external set into `out_dir/external/NAME/`, then rewrite
    `out_dir/report.html` with every set side by side, and write `out_dir/transfer.json`.

    `shown` is (name, metrics) of the set already scored in `out_dir`; `reference` (e.g. the
    internal test figures kept in the model card) is listed first when given. Every later
    row is compared with the first one and its warnings are added to the report. Returns
    the comparison rows in that order.
    """
    out = Path(out_dir)
    sets: list[tuple[str, Mapping[str, Any]]] = [reference] if reference else []
    sets.append(shown)
    used = {name for name, _ in sets}
    for data in external:
        name = _unique(dataset_name(data), used)
        metrics = evaluate_model(model_path, data, out / "external" / name, **evaluate_kw)
        sets.append((name, metrics))
    rows = comparison_rows(sets)
    base_name, base = sets[0]
    warnings: list[str] = []
    for row, (name, m) in zip(rows[1:], sets[1:], strict=True):
        row["warnings"] = transfer_warnings(base, m, name, base_name)
        warnings += row["warnings"]
    atomic_write_text(out / TRANSFER_FILE, json.dumps(rows, indent=2, allow_nan=False) + "\n")
    figures = {k: out / f for k, f in FILES.items() if k not in ("metrics", "report")}
    figures = {k: p for k, p in figures.items() if p.is_file()}
    metrics = shown[1]
    report_metrics = {**metrics, "warnings": [*metrics.get("warnings", []), *warnings]}
    card = read_card(model_path)
    write_report(out, report_metrics, figures, title=title, model_card=card, comparison=rows)
    return rows


def external_headlines(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{set name: headline} of the rows after the first (for the model card's metrics)."""
    return {r["set"]: {**headline(r), "warnings": r.get("warnings", [])} for r in rows[1:]}


def _unique(name: str, used: set[str]) -> str:
    candidate, k = name, 2
    while candidate in used:
        candidate, k = f"{name}-{k}", k + 1
    used.add(candidate)
    return candidate


def _restrict_to_split_file(table: LabelTable, split_file: str | Path) -> LabelTable:
    """Only the films a split file lists (a run trained with `max_images` lists a subset)."""
    path = Path(split_file)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            listed = {(row.get("path") or "").strip() for row in csv.DictReader(fh)}
    except OSError as exc:
        raise CxrkitError(f"{path}: cannot read split file ({exc})") from exc
    keep = [i for i in range(len(table)) if table.relpath(i) in listed]
    if not keep:
        raise CxrkitError(f"{path}: none of its films are in {table.root}; wrong `data`?")
    return table.subset(keep)
