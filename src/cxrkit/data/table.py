"""Label tables: read a labels.csv or a folder-per-class layout into records and targets."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from cxrkit.errors import DatasetError

LABELS_CSV = "labels.csv"
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".dcm", ".dicom"})
TASKS = ("binary", "multiclass", "multilabel")
MULTILABEL_SEP = "|"
# Names that mean "nothing found"; in a binary task such a class goes first (index 0),
# so index 1 is the positive class.
NEGATIVE_NAMES = frozenset({"normal", "negative", "no finding", "healthy", "none", "0", "false"})
# In a multi-label column this value is the same as an empty cell (NIH's convention).
NO_FINDING = "no finding"
# Optional multi-label column: findings that are uncertain or not labelled for a film (the
# third state beside present and absent); they are masked out of the loss, never negatives.
UNCERTAIN_COLUMN = "uncertain"
_MAX_LISTED = 5


@dataclass(frozen=True)
class Record:
    """One film: its file, its label names, its patient and the raw CSV row."""

    path: Path
    labels: tuple[str, ...]
    patient_id: str
    row: dict[str, str] = field(default_factory=dict, compare=False, repr=False)
    uncertain: tuple[str, ...] = ()


@dataclass
class LabelTable:
    """The usable records of a dataset, its classes and task, and the rows that were dropped.

    For `binary` and `multiclass` tasks each record has exactly one label and
    `targets()` gives class indices; for `multilabel` a record has zero or more labels
    (zero = no finding) and `targets()` gives multi-hot rows. In a binary task index 1
    is the positive class.
    """

    root: Path
    records: list[Record]
    class_names: list[str]
    task: str
    label_column: str
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)

    @property
    def num_classes(self) -> int:
        """Number of classes (target columns)."""
        return len(self.class_names)

    def targets(self, mask_uncertain: bool = False) -> np.ndarray:
        """(N,) int64 class indices, or (N, C) float32 multi-hot rows for multilabel.

        With `mask_uncertain=True` (multilabel only) a record's uncertain findings are NaN
        (the loss skips them); by default they are 0, as a finding not marked present.
        """
        index = {name: i for i, name in enumerate(self.class_names)}
        if self.task == "multilabel":
            out = np.zeros((len(self.records), len(self.class_names)), dtype=np.float32)
            for i, rec in enumerate(self.records):
                for name in rec.labels:
                    out[i, index[name]] = 1.0
                if mask_uncertain:
                    for name in rec.uncertain:
                        if name in index:
                            out[i, index[name]] = np.nan
            return out
        return np.array([index[rec.labels[0]] for rec in self.records], dtype=np.int64)

    def class_counts(self) -> dict[str, int]:
        """Images per class (for multilabel: images where the label is present)."""
        counts = Counter(name for rec in self.records for name in rec.labels)
        return {name: counts.get(name, 0) for name in self.class_names}

    def patient_ids(self) -> list[str]:
        """Patient id of every record, in record order."""
        return [rec.patient_id for rec in self.records]

    def subset(self, indices: Sequence[int] | np.ndarray) -> LabelTable:
        """A table with only the given records (same classes, task and root)."""
        return replace(self, records=[self.records[int(i)] for i in indices])

    def relpath(self, record: Record | int) -> str:
        """The record's path relative to `root` (POSIX style), or absolute if outside it."""
        rec = self.records[record] if isinstance(record, int) else record
        try:
            return rec.path.relative_to(self.root).as_posix()
        except ValueError:
            return str(rec.path)


def load_table(
    source: str | Path,
    label_column: str = "label",
    strict: bool = False,
    task: str | None = None,
    class_names: Sequence[str] | None = None,
) -> LabelTable:
    """Load a dataset from a labels.csv, a folder holding one, or a folder of class folders.

    Rows whose file is missing, or (single-label tasks) whose label is empty or not in
    `class_names`, are dropped and listed in `table.skipped`; with `strict=True` they raise
    `DatasetError` instead. Files are only checked for existence, not decoded.
    `task` overrides the inferred task; `class_names` fixes the class order (and set).
    """
    return _load(source, label_column, strict, task, class_names, min_classes=2)


def _load(
    source: str | Path,
    label_column: str,
    strict: bool,
    task: str | None,
    class_names: Sequence[str] | None,
    min_classes: int,
) -> LabelTable:
    if task is not None and task not in TASKS:
        raise DatasetError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if class_names is not None:
        class_names = [str(c) for c in class_names]
        if len(set(class_names)) != len(class_names) or not class_names:
            raise DatasetError(f"class_names must be non-empty and unique, got {class_names}")
    src = Path(source).expanduser()
    if not src.exists():
        raise DatasetError(f"{src}: no such file or folder")
    if src.is_file():
        return _from_csv(src, label_column, strict, task, class_names, min_classes)
    if (src / LABELS_CSV).is_file():
        return _from_csv(src / LABELS_CSV, label_column, strict, task, class_names, min_classes)
    if label_column != "label":
        raise DatasetError(
            f"{src}: no {LABELS_CSV} here, so label column {label_column!r} cannot apply "
            "(a folder-per-class layout has only the folder names as labels)"
        )
    return _from_folders(src, strict, task, class_names, min_classes)


def _from_csv(
    csv_path: Path,
    label_column: str,
    strict: bool,
    task: str | None,
    class_names: list[str] | None,
    min_classes: int,
) -> LabelTable:
    root = csv_path.parent.absolute()
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [
                {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}
                for row in reader
            ]
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{csv_path}: cannot read CSV ({exc})") from exc
    present = ", ".join(columns) if columns else "(none)"
    for needed in dict.fromkeys(("path", label_column)):
        if needed not in columns:
            raise DatasetError(f"{csv_path}: missing column {needed!r}; columns present: {present}")
    if not rows:
        raise DatasetError(f"{csv_path}: the table has no rows")
    has_patient = "patient_id" in columns
    raw = []
    for row in rows:
        path = row.get("path", "")
        pid = row.get("patient_id", "") if has_patient else ""
        raw.append((path, row.get(label_column, ""), pid, row))
    if UNCERTAIN_COLUMN in columns and task is None:
        task = "multilabel"  # a third label state only exists for multi-label findings
    return _build(root, raw, label_column, strict, task, class_names, str(csv_path), min_classes)


def _from_folders(
    folder: Path,
    strict: bool,
    task: str | None,
    class_names: list[str] | None,
    min_classes: int,
) -> LabelTable:
    root = folder.absolute()
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    raw = []
    for class_dir in class_dirs:
        files = sorted(
            p
            for p in class_dir.rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES
            and not any(part.startswith(".") for part in p.relative_to(root).parts)
            and p.is_file()
        )
        for path in files:
            rel = path.relative_to(root).as_posix()
            raw.append((rel, class_dir.name, "", {"path": rel, "label": class_dir.name}))
    if not raw:
        what = "class subfolders with images" if not class_dirs else "images in its class folders"
        raise DatasetError(
            f"{root}: no {LABELS_CSV} and no {what} "
            f"(expected {LABELS_CSV} or <class>/<image>.png|jpg|dcm)"
        )
    return _build(root, raw, "label", strict, task, class_names, str(root), min_classes)


def _split_multi(value: str) -> tuple[str, ...]:
    names = [n.strip() for n in value.split(MULTILABEL_SEP)]
    names = [n for n in names if n and n.lower() != NO_FINDING]
    return tuple(dict.fromkeys(names))


def _order_binary(names: list[str]) -> list[str]:
    names = sorted(names)
    negatives = [n for n in names if n.lower() in NEGATIVE_NAMES]
    if len(names) == 2 and len(negatives) == 1:
        return negatives + [n for n in names if n != negatives[0]]
    return names


def _build(
    root: Path,
    raw: list[tuple[str, str, str, dict[str, str]]],
    label_column: str,
    strict: bool,
    task: str | None,
    class_names: list[str] | None,
    where: str,
    min_classes: int = 2,
) -> LabelTable:
    if task is None:
        if any(MULTILABEL_SEP in value for _, value, _, _ in raw):
            task = "multilabel"
        elif class_names is not None:
            task = "binary" if len(class_names) == 2 else "multiclass"
    multilabel = task == "multilabel"
    known = set(class_names) if class_names is not None else None

    skipped: list[tuple[str, str]] = []
    kept: list[Record] = []
    seen: set[Path] = set()
    for rel, value, pid, row in raw:
        if not rel:
            skipped.append((rel, "empty path"))
            continue
        path = root / rel
        if path in seen:
            skipped.append((rel, "duplicate row for this path"))
            continue
        seen.add(path)
        if not path.is_file():
            skipped.append((rel, "file not found"))
            continue
        if multilabel:
            labels = _split_multi(value)
            unknown = [n for n in labels if known is not None and n not in known]
        else:
            if not value:
                skipped.append((rel, f"empty label in column {label_column!r}"))
                continue
            labels = (value,)
            unknown = [value] if known is not None and value not in known else []
        if unknown:
            skipped.append((rel, f"unknown label {unknown[0]!r}"))
            continue
        patient = pid or Path(rel).stem
        uncertain: tuple[str, ...] = ()
        if multilabel and row.get(UNCERTAIN_COLUMN):
            uncertain = tuple(
                n
                for n in _split_multi(row[UNCERTAIN_COLUMN])
                if n not in labels and (known is None or n in known)
            )
        kept.append(
            Record(path=path, labels=labels, patient_id=patient, row=row, uncertain=uncertain)
        )

    if strict and skipped:
        listed = "; ".join(f"{p or '<empty>'}: {r}" for p, r in skipped[:_MAX_LISTED])
        more = f" (and {len(skipped) - _MAX_LISTED} more)" if len(skipped) > _MAX_LISTED else ""
        raise DatasetError(f"{where}: {len(skipped)} unusable row(s): {listed}{more}")
    if not kept:
        listed = "; ".join(f"{p or '<empty>'}: {r}" for p, r in skipped[:_MAX_LISTED])
        raise DatasetError(
            f"{where}: no usable rows ({len(skipped)} skipped"
            + (f": {listed}" if listed else "")
            + ")"
        )

    if class_names is None:
        found = sorted({name for rec in kept for name in (*rec.labels, *rec.uncertain)})
        if task is None:
            task = "binary" if len(found) == 2 else "multiclass"
        if task == "binary":
            found = _order_binary(found)
        class_names = found
        if not multilabel and len(class_names) < min_classes:
            raise DatasetError(
                f"{where}: only one class ({', '.join(class_names) or 'none'}) in column "
                f"{label_column!r}; a classifier needs two or more "
                "(pass class_names=... to evaluate on a one-class set)"
            )
        if multilabel and not class_names:
            raise DatasetError(f"{where}: no label names found in column {label_column!r}")
    assert task is not None
    if task == "binary" and len(class_names) != 2:
        raise DatasetError(
            f"{where}: task 'binary' needs exactly 2 classes, found {len(class_names)}: "
            f"{', '.join(class_names)}"
        )
    return LabelTable(
        root=root,
        records=kept,
        class_names=list(class_names),
        task=task,
        label_column=label_column,
        skipped=skipped,
    )
