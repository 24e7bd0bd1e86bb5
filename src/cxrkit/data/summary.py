"""Dataset summary: class counts, patients, image sizes, unreadable files and duplicates."""

from __future__ import annotations

import hashlib
import io
import os
import random
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cxrkit.data.table import LabelTable, _load
from cxrkit.progress import progress_lines

_PNG = b"\x89PNG\r\n\x1a\n"
_JPEG = b"\xff\xd8\xff"
_TOP_SIZES = 5
_MAX_SKIPPED_LISTED = 5


@dataclass
class FileProbe:
    """What a cheap look at one file found: content hash, format, (h, w), or an error."""

    sha256: str | None = None
    format: str | None = None
    size: tuple[int, int] | None = None
    error: str | None = None


def _format_of(head: bytes) -> str | None:
    if head.startswith(_PNG):
        return "png"
    if head.startswith(_JPEG):
        return "jpeg"
    if head[128:132] == b"DICM":
        return "dicom"
    return None


def _raster_size(data: bytes | Path) -> tuple[int, int]:
    from PIL import Image

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    with Image.open(source) as im:  # reads the header only, decodes no pixels
        width, height = im.size
    return int(height), int(width)


def _dicom_size(data: bytes | Path) -> tuple[int, int]:
    import pydicom

    source = io.BytesIO(data) if isinstance(data, bytes) else data
    ds = pydicom.dcmread(source, stop_before_pixels=True)
    rows, cols = ds.get("Rows"), ds.get("Columns")
    if not rows or not cols:
        raise ValueError("DICOM without Rows/Columns (not an image)")
    return int(rows), int(cols)


def _truncation(data: bytes, fmt: str) -> str | None:
    tail = data[-1024:].rstrip(b"\x00")
    if fmt == "png" and b"IEND" not in tail[-16:]:
        return "truncated PNG (no IEND chunk at the end)"
    if fmt == "jpeg" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    return None


def probe_file(path: str | Path, read_all: bool = True) -> FileProbe:
    """Sniff one file without decoding pixels.

    With `read_all`, the whole file is read once: sha256, format, header size and a
    truncation check (PNG IEND / JPEG EOI). Otherwise only the header is read for the size.
    """
    path = Path(path)
    probe = FileProbe()
    try:
        if read_all:
            data = path.read_bytes()
            head = data[:132]
        else:
            data = b""
            with path.open("rb") as fh:
                head = fh.read(132)
    except OSError as exc:
        probe.error = f"cannot read file ({exc.strerror or exc})"
        return probe
    if read_all:
        probe.sha256 = hashlib.sha256(data).hexdigest()
    if not head:
        probe.error = "empty file"
        return probe
    probe.format = _format_of(head)
    if probe.format is None:
        probe.error = "not a PNG, JPEG or DICOM file"
        return probe
    source: bytes | Path = data if read_all else path
    try:
        probe.size = (_dicom_size if probe.format == "dicom" else _raster_size)(source)
    except Exception as exc:  # any parser failure means the header is unreadable
        probe.error = f"unreadable {probe.format.upper()} header ({exc})"
        return probe
    if read_all and probe.format != "dicom":
        probe.error = _truncation(data, probe.format)
    return probe


def summarize(
    source: str | Path,
    label_column: str = "label",
    check_files: bool = True,
    sample_sizes: int | None = None,
    workers: int | None = None,
) -> dict[str, Any]:
    """Summarise a dataset (labels.csv, a folder holding one, or class folders) as a dict.

    Keys: dataset, root, label_column, task, n_images, n_patients, max_images_per_patient,
    classes [{name, count, percent}], no_finding (multilabel: images with no label),
    imbalance_ratio (largest / smallest non-empty class), skipped {count, first},
    files_checked, sizes {checked, distinct, most_common [{size: [h, w], count}],
    height [min, max], width [min, max]}, formats, unreadable [{path, reason}],
    duplicates [{paths, labels_differ, patients_differ}] (identical bytes; across patients
    they would leak between splits).
    With `check_files`, every file is read once (content hash, header, truncation check);
    otherwise only headers of `sample_sizes` random files (None = all) are read for sizes
    and unreadable/duplicates are not checked (None in the result).
    """
    table = _load(source, label_column, False, None, None, min_classes=1)
    out: dict[str, Any] = {
        "dataset": str(source),
        "root": str(table.root),
        "label_column": table.label_column,
        "task": table.task,
    }
    out.update(_label_stats(table))
    out["skipped"] = {
        "count": len(table.skipped),
        "first": [{"path": p, "reason": r} for p, r in table.skipped[:_MAX_SKIPPED_LISTED]],
    }
    out["files_checked"] = bool(check_files)

    records = list(range(len(table)))
    if not check_files and sample_sizes is not None and sample_sizes < len(records):
        records = sorted(random.Random(0).sample(records, max(int(sample_sizes), 0)))
    n_workers = workers or min(8, 2 * (os.cpu_count() or 1))
    paths = [table.records[i].path for i in records]
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        probes = list(
            progress_lines(
                pool.map(lambda p: probe_file(p, read_all=check_files), paths),
                total=len(paths),
                what="reading files" if check_files else "reading headers",
                unit="files",
            )
        )

    sizes = Counter(p.size for p in probes if p.size is not None and p.error is None)
    out["sizes"] = _size_stats(sizes)
    out["formats"] = dict(sorted(Counter(p.format for p in probes if p.format).items()))
    if check_files:
        out["unreadable"] = [
            {"path": table.relpath(i), "reason": p.error}
            for i, p in zip(records, probes, strict=True)
            if p.error is not None
        ]
        out["duplicates"] = _duplicates(table, records, probes)
    else:
        out["unreadable"] = None
        out["duplicates"] = None
    return out


def _label_stats(table: LabelTable) -> dict[str, Any]:
    n = len(table)
    counts = table.class_counts()
    classes = [
        {"name": name, "count": c, "percent": round(100.0 * c / n, 2) if n else 0.0}
        for name, c in counts.items()
    ]
    nonzero = [c for c in counts.values() if c > 0]
    patients = Counter(table.patient_ids())
    no_finding = None
    if table.task == "multilabel":
        no_finding = sum(1 for rec in table.records if not rec.labels)
    return {
        "class_names": list(table.class_names),
        "n_images": n,
        "n_patients": len(patients),
        "max_images_per_patient": max(patients.values()) if patients else 0,
        "classes": classes,
        "no_finding": no_finding,
        "imbalance_ratio": round(max(nonzero) / min(nonzero), 3) if nonzero else None,
    }


def _size_stats(sizes: Counter[tuple[int, int]]) -> dict[str, Any]:
    if not sizes:
        return {"checked": 0, "distinct": 0, "most_common": [], "height": None, "width": None}
    heights = [h for h, _ in sizes]
    widths = [w for _, w in sizes]
    return {
        "checked": sum(sizes.values()),
        "distinct": len(sizes),
        "most_common": [
            {"size": [h, w], "count": c} for (h, w), c in sizes.most_common(_TOP_SIZES)
        ],
        "height": [min(heights), max(heights)],
        "width": [min(widths), max(widths)],
    }


def _duplicates(
    table: LabelTable, records: list[int], probes: list[FileProbe]
) -> list[dict[str, Any]]:
    by_hash: dict[str, list[int]] = {}
    for i, p in zip(records, probes, strict=True):
        if p.sha256 is not None and p.error != "empty file":
            by_hash.setdefault(p.sha256, []).append(i)
    groups = []
    for members in by_hash.values():
        if len(members) > 1:
            labels = {table.records[i].labels for i in members}
            patients = {table.records[i].patient_id for i in members}
            groups.append(
                {
                    "paths": [table.relpath(i) for i in members],
                    "labels_differ": len(labels) > 1,
                    "patients_differ": len(patients) > 1,
                }
            )
    groups.sort(key=lambda g: g["paths"][0])
    return groups
