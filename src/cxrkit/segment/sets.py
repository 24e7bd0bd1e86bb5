"""Several masked sets (annotators) as one list of films with one patient-disjoint split.

The lung sets share patient ids, and some films are masked by two annotators; each
(set, film) pair is one training example, and every film of a patient lands on the same
side of the split, whichever set it comes from. `split.csv` records the set of each row.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrkit.data.identity import dataset_name
from cxrkit.data.patient_split import patient_part
from cxrkit.data.splits import SPLITS
from cxrkit.errors import DatasetError
from cxrkit.io.atomic import atomic_write_text
from cxrkit.segment.data import MASK_COLUMN, load_mask_table, read_csv_rows, read_mask

# `view` values that mean a lateral film (the rest, PA / AP / AP Supine / empty, are frontal).
LATERAL_VIEWS = frozenset({"l", "ll", "rl", "lateral", "lat"})
SPLIT_FIELDS = ("set", "path", "patient_id", "view", "split")


@dataclass(frozen=True)
class MaskFilm:
    """One film with one annotator's mask: its set, its paths and its patient and view."""

    set_name: str
    root: Path
    path: str  # relative to the set's folder, as labels.csv writes it
    mask: str
    patient_id: str
    view: str = ""

    @property
    def view_group(self) -> str:
        """'lateral' for a lateral film (view L), else 'frontal'."""
        return "lateral" if self.view.strip().lower() in LATERAL_VIEWS else "frontal"

    @property
    def film_key(self) -> tuple[str, str]:
        """(patient id, file stem): names the same film in another annotator's set."""
        return self.patient_id, Path(self.path).stem

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """(film float32 in [0, 1], mask bool) at the film's size."""
        from cxrkit.io import read_image

        film, _meta = read_image(self.root / self.path)
        return film, read_mask(self.root / self.mask, film.shape)


def load_mask_sets(
    sources: str | Path | Sequence[str | Path], mask_column: str = MASK_COLUMN
) -> list[MaskFilm]:
    """Masked films of one or more labels.csv sets (folder or file), in set then row order.

    Each set is named by its folder (`cxrkit.data.identity.dataset_name`); two sets with
    the same name are refused, since split.csv tells them apart by name.
    """
    if isinstance(sources, str | Path):
        sources = [sources]
    if not sources:
        raise DatasetError("no mask set given")
    films: list[MaskFilm] = []
    seen: dict[str, str] = {}
    for source in sources:
        name = dataset_name(source)
        if name in seen:
            raise DatasetError(f"two mask sets are both named {name!r} ({seen[name]}, {source})")
        seen[name] = str(source)
        table = load_mask_table(source, mask_column)
        for rec in table.records:
            films.append(
                MaskFilm(
                    set_name=name,
                    root=table.root,
                    path=table.relpath(rec),
                    mask=rec.row[mask_column],
                    patient_id=rec.patient_id,
                    view=rec.row.get("view", ""),
                )
            )
    return films


def patient_splits(films: Sequence[MaskFilm]) -> dict[str, np.ndarray]:
    """Indices per part from the shared patient hash (`cxrkit.data.patient_split`)."""
    parts: dict[str, list[int]] = {name: [] for name in SPLITS}
    for i, film in enumerate(films):
        parts[patient_part(film.patient_id)].append(i)
    return {name: np.array(idx, dtype=np.int64) for name, idx in parts.items()}


def fraction_splits(
    films: Sequence[MaskFilm], val: float, test: float, seed: int = 0
) -> dict[str, np.ndarray]:
    """Patient-disjoint split by fractions (`cxrkit.data.make_splits`), balanced over sets."""
    from cxrkit.data.splits import make_splits
    from cxrkit.data.table import LabelTable, Record

    names = sorted({f.set_name for f in films})
    records = [
        Record(f.root / f.path, (f.set_name,), f.patient_id) for f in films
    ]  # the set is the stratum: each annotator gets its share of every part
    task = "binary" if len(names) == 2 else "multiclass"
    table = LabelTable(Path("/"), records, names, task, "set")
    return make_splits(table, val=val, test=test, seed=seed)


def write_set_split(
    path: str | Path, films: Sequence[MaskFilm], splits: dict[str, np.ndarray]
) -> Path:
    """Write `set,path,patient_id,view,split`, one row per (set, film); every film in one part."""
    part_of = [""] * len(films)
    for name, idx in splits.items():
        for i in np.asarray(idx, dtype=np.int64).tolist():
            if part_of[i]:
                raise DatasetError(f"film {films[i].path} is in both {part_of[i]!r} and {name!r}")
            part_of[i] = name
    missing = [f.path for f, p in zip(films, part_of, strict=True) if not p]
    if missing:
        raise DatasetError(f"{len(missing)} film(s) are in no split, e.g. {missing[:3]}")
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(SPLIT_FIELDS)
    for film, part in zip(films, part_of, strict=True):
        writer.writerow([film.set_name, film.path, film.patient_id, film.view, part])
    return atomic_write_text(path, buf.getvalue())


def read_set_split(path: str | Path, films: Sequence[MaskFilm]) -> dict[str, np.ndarray]:
    """Index arrays per part for `films` from a split.csv.

    Rows are matched by (set, path); a file without a `set` column (a one-set split, as
    `cxrkit.data.write_split_csv` writes) matches by path and needs one set. A film of a
    set the file names but does not list, or a set the file does not know, is an error:
    scoring must never silently mix training films into a test figure.
    """
    path = Path(path)
    rows = read_csv_rows(path, ("path", "split"))
    with_set = bool(rows) and "set" in rows[0]
    if not with_set and len({f.set_name for f in films}) > 1:
        raise DatasetError(f"{path}: has no `set` column, so it can split only one mask set")
    part_of: dict[tuple[str, str], str] = {}
    for row in rows:
        part = {"valid": "val", "validation": "val"}.get(row["split"].lower(), row["split"].lower())
        if part not in SPLITS:
            raise DatasetError(f"{path}: unknown split {row['split']!r} for {row['path']}")
        part_of[(row["set"] if with_set else "", row["path"])] = part
    known_sets = {key[0] for key in part_of}
    parts: dict[str, list[int]] = {name: [] for name in SPLITS}
    missing = []
    for i, film in enumerate(films):
        key = (film.set_name if with_set else "", film.path)
        if key not in part_of:
            missing.append(f"{film.set_name}/{film.path}")
            continue
        parts[part_of[key]].append(i)
    if missing:
        unknown = sorted({f.set_name for f in films} - known_sets) if with_set else []
        why = f"set(s) {unknown} not in it" if unknown else f"e.g. {missing[:3]} not listed"
        raise DatasetError(
            f"{path}: split file does not cover {len(missing)} film(s) ({why}); "
            "score without a split or pass the split file of a run that used these sets"
        )
    return {name: np.array(idx, dtype=np.int64) for name, idx in parts.items()}


def doubly_masked(films: Sequence[MaskFilm]) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j, of one film masked in two different sets.

    The same film is the same patient id and the same file stem (both lung sets keep
    the collection's file names).
    """
    by_key: dict[tuple[str, str], list[int]] = {}
    for i, film in enumerate(films):
        by_key.setdefault(film.film_key, []).append(i)
    pairs = []
    for idx in by_key.values():
        for a in range(len(idx)):
            for b in range(a + 1, len(idx)):
                if films[idx[a]].set_name != films[idx[b]].set_name:
                    pairs.append((idx[a], idx[b]))
    return pairs
