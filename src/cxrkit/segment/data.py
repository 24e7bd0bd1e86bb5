"""Films with reference lung masks: a labels.csv with `path` and `mask` columns."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from cxrkit.data.table import LABELS_CSV, LabelTable, Record
from cxrkit.errors import DatasetError, ImageReadError

MASK_COLUMN = "mask"


def load_mask_table(source: str | Path, mask_column: str = MASK_COLUMN) -> LabelTable:
    """Rows of a labels.csv (or a folder holding one) that have a mask file.

    Needs `path` and `mask_column` (paths relative to the CSV's folder); `patient_id`
    (default: the image path) keeps splits patient-disjoint and `label`, when present,
    stratifies them. Rows without a mask or with a missing file go to `table.skipped`.
    """
    src = Path(source).expanduser()
    csv_path = src / LABELS_CSV if src.is_dir() else src
    if not csv_path.is_file():
        raise DatasetError(f"{src}: no {LABELS_CSV} with `path` and `{mask_column}` columns here")
    rows = read_csv_rows(csv_path, ("path", mask_column))
    root = csv_path.parent.absolute()
    records, skipped = [], []
    for row in rows:
        rel, mask = row.get("path", ""), row.get(mask_column, "")
        if not rel or not mask:
            skipped.append((rel, "no mask"))
        elif not (root / rel).is_file() or not (root / mask).is_file():
            skipped.append((rel, "image or mask file not found"))
        else:
            label = row.get("label") or "lungs"
            records.append(Record(root / rel, (label,), row.get("patient_id") or rel, row))
    if not records:
        raise DatasetError(f"{csv_path}: no rows with an existing image and mask")
    classes = sorted({r.labels[0] for r in records})
    task = "binary" if len(classes) == 2 else "multiclass"
    return LabelTable(root, records, classes, task, "label", skipped)


def read_csv_rows(path: Path, needed: tuple[str, ...]) -> list[dict[str, str]]:
    """The rows of a CSV file with keys and values stripped; a DatasetError names the file
    when it cannot be read or lacks one of the `needed` columns."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in reader.fieldnames or []]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{path}: cannot read CSV ({exc})") from exc
    for column in needed:
        if column not in columns:
            raise DatasetError(f"{path}: missing column {column!r} (has {', '.join(columns)})")
    return rows


def read_mask(path: str | Path, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A mask PNG as bool (non-zero = lung); resized (nearest) to `shape` when given.

    A file that is not a readable image raises `ImageReadError` naming the mask."""
    try:
        with Image.open(path) as im:
            im = im.convert("L")
            if shape is not None and im.size != (shape[1], shape[0]):
                im = im.resize((shape[1], shape[0]), Image.Resampling.NEAREST)
            mask = np.asarray(im) > 127
    except (MemoryError, KeyboardInterrupt):
        raise
    except Exception as exc:  # PIL raises many types on a hostile file (and bombs)
        reason = f"not a readable mask image ({type(exc).__name__}: {exc})"
        raise ImageReadError(path, reason) from exc
    if mask.ndim != 2:
        raise ImageReadError(path, f"a mask must be a 2-D image, got shape {mask.shape}")
    return mask


def read_pair(
    table: LabelTable, index: int, mask_column: str = MASK_COLUMN
) -> tuple[np.ndarray, np.ndarray]:
    """(film float32 in [0, 1], mask bool) of record `index`, at the film's size."""
    from cxrkit.io import read_image

    rec = table.records[index]
    film, _meta = read_image(rec.path)
    return film, read_mask(table.root / rec.row[mask_column], film.shape)
