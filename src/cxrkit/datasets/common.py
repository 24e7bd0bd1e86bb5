"""What every adapter shares: the options, one film row, and writing a prepared set."""

from __future__ import annotations

import csv
import gzip
import io
import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cxrkit.data.table import MULTILABEL_SEP, UNCERTAIN_COLUMN
from cxrkit.errors import DatasetError
from cxrkit.io.atomic import atomic_write_text

UNCERTAIN_POLICIES = ("ignore", "zeros", "ones")
BASE_COLUMNS = ("path", "label", UNCERTAIN_COLUMN, "patient_id", "view", "sex", "age", "source")
BOX_COLUMNS = ("path", "finding", "x", "y", "w", "h", "reader")
INFO_FILE = "dataset.json"


@dataclass
class PrepareOptions:
    """Options of `cxr data prepare`, handed to an adapter.

    `views` keeps only films whose view is listed (None = all); `uncertain` says what an
    uncertain finding becomes (`ignore`: the third state, masked from the loss; `zeros`:
    absent; `ones`: present); `task` picks a preset label task where a set has several;
    `readers` is VinDr's reader fusion (`majority` or `any`).
    """

    root: Path
    out: Path
    views: frozenset[str] | None = None
    uncertain: str = "ignore"
    check_files: bool = True
    task: str | None = None
    readers: str = "majority"


@dataclass
class FilmRow:
    """One film of a prepared set; `path` is absolute (made relative to --out on writing)."""

    path: Path
    findings: list[str] = field(default_factory=list)
    uncertain: list[str] = field(default_factory=list)
    label: str | None = None  # single-label sets: the class name; None = use `findings`
    patient_id: str = ""
    view: str = ""
    sex: str = ""
    age: str = ""
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class Prepared:
    """An adapter's result: films, boxes (absolute path, finding, x, y, w, h, reader) and
    the vocabulary findings this set labels (empty for single-label sets)."""

    rows: list[FilmRow]
    findings: list[str]
    multilabel: bool
    boxes: list[tuple[Path, str, float, float, float, float, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def need_file(root: Path, *names: str) -> Path:
    """The first of `names` (tried plain, .gz, .zip) in `root`, else anywhere below it
    (one walk); a DatasetError naming them when none is there."""
    candidates = [c for name in names for c in (name, name + ".gz", name + ".zip")]
    for candidate in candidates:
        if (root / candidate).is_file():
            return root / candidate
    wanted = set(candidates)
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in wanted.intersection(filenames):
            found.setdefault(name, Path(dirpath) / name)
    for candidate in candidates:
        if candidate in found:
            return found[candidate]
    raise DatasetError(f"{root}: no {' or '.join(names)} found (also tried .gz / .zip)")


def open_text(path: Path) -> io.TextIOBase:
    """A text handle on a plain, .gz or single-member .zip file."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path), encoding="utf-8-sig", newline="")
    if path.suffix == ".zip":
        zf = zipfile.ZipFile(path)
        members = [m for m in zf.namelist() if not m.endswith("/")]
        if len(members) != 1:
            raise DatasetError(f"{path}: expected one file in the zip, found {len(members)}")
        return io.TextIOWrapper(zf.open(members[0]), encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def read_csv(path: Path) -> Iterator[dict[str, str]]:
    """Rows of a (possibly compressed) CSV with stripped keys and values."""
    with open_text(path) as fh:
        for row in csv.DictReader(fh):
            yield {(k or "").strip(): (v or "").strip() for k, v in row.items() if k is not None}


def index_files(root: Path, suffixes: Iterable[str]) -> dict[str, Path]:
    """File name -> path for every file under `root` with one of `suffixes` (one walk)."""
    want = tuple(s.lower() for s in suffixes)
    found: dict[str, Path] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.lower().endswith(want):
                found.setdefault(name, Path(dirpath) / name)
    return found


def apply_uncertain(row: FilmRow, policy: str) -> None:
    """Apply the uncertain policy in place: keep (ignore), drop (zeros) or promote (ones)."""
    if policy == "ones":
        row.findings = list(dict.fromkeys(row.findings + row.uncertain))
        row.uncertain = []
    elif policy == "zeros":
        row.uncertain = []
    else:
        row.uncertain = [u for u in dict.fromkeys(row.uncertain) if u not in row.findings]


def check_options(options: PrepareOptions) -> None:
    """Refuse bad option values before any file is read."""
    if options.uncertain not in UNCERTAIN_POLICIES:
        raise DatasetError(
            f"uncertain must be one of {', '.join(UNCERTAIN_POLICIES)}, got {options.uncertain!r}"
        )
    if options.readers not in ("majority", "any"):
        raise DatasetError(f"readers must be 'majority' or 'any', got {options.readers!r}")
    if not options.root.is_dir():
        raise DatasetError(f"{options.root}: no such folder (root)")


def _rel(path: Path, out: Path) -> str:
    try:
        return Path(os.path.relpath(path, out)).as_posix()
    except ValueError:  # another drive on Windows
        return path.as_posix()


def write_prepared(
    prepared: Prepared, options: PrepareOptions, name: str, source: str | None = None
) -> dict:
    """Filter by view, apply the uncertain policy, drop missing files (if checked) and write
    labels.csv, boxes.csv (when there are boxes) and dataset.json under `options.out`.
    Returns the summary written to dataset.json."""
    out = options.out
    out.mkdir(parents=True, exist_ok=True)
    source = source or name
    kept: list[FilmRow] = []
    dropped = {"view": 0, "missing_file": 0}
    for row in prepared.rows:
        if options.views is not None and row.view.upper() not in options.views:
            dropped["view"] += 1
            continue
        if options.check_files and not row.path.is_file():
            dropped["missing_file"] += 1
            continue
        if prepared.multilabel:
            apply_uncertain(row, options.uncertain)
        kept.append(row)
    if not kept:
        raise DatasetError(
            f"{options.root}: no films left for {name} (dropped: {dropped['view']} by view, "
            f"{dropped['missing_file']} with no file; pass check_files=False to keep rows "
            "whose file is not there yet)"
        )
    extras = list(dict.fromkeys(k for row in kept for k in row.extra))
    columns = (
        list(BASE_COLUMNS)
        if prepared.multilabel
        else [c for c in BASE_COLUMNS if c != UNCERTAIN_COLUMN]
    )
    columns += [c for c in extras if c not in columns]
    tmp = out / "labels.csv.tmp"
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in kept:
            label = MULTILABEL_SEP.join(row.findings) if prepared.multilabel else (row.label or "")
            values = {
                "path": _rel(row.path, out),
                "label": label,
                UNCERTAIN_COLUMN: MULTILABEL_SEP.join(row.uncertain),
                "patient_id": row.patient_id,
                "view": row.view,
                "sex": row.sex,
                "age": row.age,
                "source": source,
                **row.extra,
            }
            writer.writerow([values.get(c, "") for c in columns])
    os.replace(tmp, out / "labels.csv")
    kept_paths = {row.path for row in kept}
    boxes = [b for b in prepared.boxes if b[0] in kept_paths]
    if boxes:
        with (out / "boxes.csv").open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(BOX_COLUMNS)
            for path, finding, x, y, w, h, reader in boxes:
                writer.writerow(
                    [
                        _rel(path, out),
                        finding,
                        f"{x:.2f}",
                        f"{y:.2f}",
                        f"{w:.2f}",
                        f"{h:.2f}",
                        reader,
                    ]
                )
    counts: dict[str, int] = {}
    for row in kept:
        for f in row.findings if prepared.multilabel else [row.label or ""]:
            counts[f] = counts.get(f, 0) + 1
    info = {
        "name": name,
        "source": source,
        "films": len(kept),
        "patients": len({row.patient_id for row in kept}),
        "multilabel": prepared.multilabel,
        "findings": prepared.findings,
        "counts": dict(sorted(counts.items())),
        "uncertain_films": sum(1 for row in kept if row.uncertain),
        "boxes": len(boxes),
        "dropped": dropped,
        "options": {
            "views": sorted(options.views) if options.views else None,
            "uncertain": options.uncertain,
            "task": options.task,
            "readers": options.readers,
            "check_files": options.check_files,
        },
        "notes": prepared.notes,
    }
    atomic_write_text(out / INFO_FILE, json.dumps(info, indent=2) + "\n")
    return info
