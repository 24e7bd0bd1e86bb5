"""`cxr data merge`: several prepared sets as one labels.csv, with a `source` column.

Multi-label sets: a vocabulary finding that one source does not label (it is not in that
source's dataset.json `findings`) is written as uncertain for that source's films, so the
merged set never claims a finding absent where its source never looked. Single-label sets
merge by class name. Paths are rewritten relative to the merged folder; patient ids get a
SOURCE: prefix (ids are only unique within one set).
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

from cxrkit.data.table import LABELS_CSV, MULTILABEL_SEP, UNCERTAIN_COLUMN
from cxrkit.datasets.common import BASE_COLUMNS, BOX_COLUMNS, INFO_FILE
from cxrkit.errors import DatasetError
from cxrkit.io.atomic import atomic_write_text


def _split(value: str) -> list[str]:
    return [v for v in (value or "").split(MULTILABEL_SEP) if v]


def _source(folder: Path) -> tuple[Path, list[dict[str, str]], list[str], dict]:
    csv_path = folder / LABELS_CSV if folder.is_dir() else folder
    if not csv_path.is_file():
        raise DatasetError(f"{folder}: no {LABELS_CSV}")
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        rows, columns = list(reader), list(reader.fieldnames or [])
    info_path = csv_path.parent / INFO_FILE
    info = json.loads(info_path.read_text()) if info_path.is_file() else {}
    return csv_path.parent, rows, columns, info


def merge_datasets(sources: list[str | Path], out: str | Path) -> dict:
    """Merge prepared sets into `out`/labels.csv (+ boxes.csv); returns a summary."""
    if len(sources) < 2:
        raise DatasetError("merge needs two or more prepared sets")
    out = Path(out).absolute()
    out.mkdir(parents=True, exist_ok=True)
    loaded = [_source(Path(s).absolute()) for s in sources]
    multi = [
        UNCERTAIN_COLUMN in cols or info.get("multilabel", False) for _, _, cols, info in loaded
    ]
    if len(set(multi)) != 1:
        raise DatasetError(
            "cannot merge multi-label sets (findings) with single-label sets (classes); "
            "prepare them with the same kind of labels"
        )
    multilabel = multi[0]
    labelled: list[set[str]] = []
    for _, rows, _, info in loaded:
        if info.get("findings"):
            labelled.append(set(info["findings"]))
        else:  # no dataset.json: what the rows mention is all we know it labels
            labelled.append({f for r in rows for f in _split(r.get("label", ""))})
    vocabulary = sorted(set().union(*labelled)) if multilabel else []
    columns = (
        list(BASE_COLUMNS) if multilabel else [c for c in BASE_COLUMNS if c != UNCERTAIN_COLUMN]
    )
    for _, _, cols, _ in loaded:
        columns += [c for c in cols if c not in columns]
    merged, seen, boxes = [], set(), []
    names = []
    for (root, rows, _, info), known in zip(loaded, labelled, strict=True):
        name = info.get("source") or info.get("name") or root.name
        names.append(name)
        missing = [f for f in vocabulary if f not in known]
        for r in rows:
            path = (root / r["path"]).resolve()
            if path in seen:
                raise DatasetError(f"{path}: the same film is in two of the merged sets")
            seen.add(path)
            row = dict(r)
            row["path"] = Path(os.path.relpath(path, out)).as_posix()
            row["source"] = r.get("source") or name
            # patient ids are only unique within a set: "1" of NIH is not "1" of OpenI
            row["patient_id"] = f"{row['source']}:{r.get('patient_id') or Path(r['path']).stem}"
            for col in ("mask",):
                if r.get(col):
                    row[col] = Path(os.path.relpath(root / r[col], out)).as_posix()
            if multilabel:
                present = _split(r.get("label", ""))
                unsure = _split(r.get(UNCERTAIN_COLUMN, "")) + missing
                row[UNCERTAIN_COLUMN] = MULTILABEL_SEP.join(
                    f for f in dict.fromkeys(unsure) if f not in present
                )
            merged.append(row)
        if (root / "boxes.csv").is_file():
            with (root / "boxes.csv").open(newline="") as fh:
                for b in csv.DictReader(fh):
                    b["path"] = Path(os.path.relpath(root / b["path"], out)).as_posix()
                    boxes.append(b)
    with (out / LABELS_CSV).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(merged)
    if boxes:
        with (out / "boxes.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(BOX_COLUMNS), extrasaction="ignore")
            writer.writeheader()
            writer.writerows(boxes)
    info = {
        "name": "+".join(names),
        "source": "merged",
        "sources": names,
        "films": len(merged),
        "patients": len({r["patient_id"] for r in merged}),
        "multilabel": multilabel,
        "findings": vocabulary,
        "boxes": len(boxes),
    }
    atomic_write_text(out / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return info
