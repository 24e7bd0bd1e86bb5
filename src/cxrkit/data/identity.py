"""How a dataset is named in model cards and reports: its folder's name and a content hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from cxrkit.data.cache import file_sha256
from cxrkit.data.table import LABELS_CSV


def dataset_name(source: str | Path) -> str:
    """A dataset's display name, never a path: its folder's name (a labels.csv names the
    folder holding it; `.` names the current folder)."""
    p = Path(source).expanduser().absolute()
    return (p.parent if p.is_file() or p.suffix.lower() == ".csv" else p).name


def labels_file(source: str | Path) -> Path:
    """The labels.csv a dataset source means (the file itself, or the one in the folder)."""
    p = Path(source).expanduser()
    return p if p.is_file() or p.suffix.lower() == ".csv" else p / LABELS_CSV


def data_record(source: str | Path) -> dict[str, Any]:
    """A dataset as a model card names it: its name and the SHA-256 of its labels.csv (when
    it has one), never its local path."""
    record: dict[str, Any] = {"name": dataset_name(source)}
    labels = labels_file(source)
    if labels.is_file():
        record["labels_sha256"] = file_sha256(labels)
    return record


def listing_sha256(table: Any) -> str:
    """Content hash of a set without a labels.csv: its sorted `relpath,labels` lines."""
    lines = sorted(f"{table.relpath(r)},{'|'.join(r.labels)}" for r in table.records)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def set_fingerprint(source: str | Path, table: Any) -> str:
    """The fingerprint a card names a labelled set by: the SHA-256 of its labels.csv, or of
    its listing (`listing_sha256`) for a folder-per-class set."""
    labels = labels_file(source)
    return file_sha256(labels) if labels.is_file() else listing_sha256(table)


def portable_paths(values: dict[str, Any], keys: Iterable[str]) -> dict[str, Any]:
    """`values` with each path option named in `keys` cut to its file or folder name, so a
    config saved in a model card shows nothing of the machine it was trained on."""
    out = dict(values)
    for key in keys:
        if isinstance(out.get(key), str):
            out[key] = Path(out[key]).name
    return out
