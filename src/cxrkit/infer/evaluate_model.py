"""`evaluate`: score a saved model on labelled films (all or one split); write the report."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader

from cxrkit.classifier import Classifier
from cxrkit.data.dataset import CXRDataset, collate_skip_bad
from cxrkit.data.splits import read_split_csv
from cxrkit.data.table import LabelTable, load_table
from cxrkit.errors import CxrkitError
from cxrkit.evaluate import evaluate_predictions


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
    probs, got = clf.batch_probs(loader)  # the classifier's forward and card calibration
    if len(got) == 0:
        raise CxrkitError(f"{data}: no readable films to evaluate")
    y = table.targets()[got]
    from cxrkit.data.identity import set_fingerprint
    from cxrkit.data.selection import selection_flag

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
        from cxrkit.data.identity import dataset_name
        from cxrkit.infer.external import score_external

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
