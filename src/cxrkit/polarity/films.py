"""Training films for the polarity model: discover, patient-split and decode shared sets."""

from __future__ import annotations

import csv
import hashlib
import logging
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, replace
from fnmatch import fnmatch
from pathlib import Path

import numpy as np

from cxrkit.data.patient_split import patient_part
from cxrkit.data.table import IMAGE_SUFFIXES, LABELS_CSV

log = logging.getLogger("cxrkit.polarity")
SPLITS = ("train", "val", "test")
# sets split like the lung model (one hash of the patient id, shared by both lung sets)
LUNG_SPLIT_SOURCES: tuple[str, ...] = ("covid_lungmasks", "lungmasks_v7")
LATERAL_CODES = frozenset({"l", "lat", "lateral", "ll", "rl"})  # labels.csv `view` values


@dataclass(frozen=True)
class FilmRef:
    """One film file, the set it came from, its patient, its split and its view."""

    path: Path
    source: str
    patient: str
    split: str = "train"
    view: str = "frontal"  # 'frontal' or 'lateral' (labels.csv `view` column: L = lateral)


def view_from_code(code: str | None) -> str:
    """'lateral' for a labels.csv view code such as L / LL / LATERAL, else 'frontal'."""
    return "lateral" if (code or "").strip().lower() in LATERAL_CODES else "frontal"


def discover(folder: Path, exclude: Sequence[str] = ()) -> list[FilmRef]:
    """Films of one set: `labels.csv` rows (path, patient_id) or every image under `folder`.

    Without a patient id, each file is its own patient; without a `view` column, each film
    is frontal. File names matching an `exclude` glob are left out. The source name is the
    folder's name.
    """
    folder = Path(folder)
    source = folder.name
    csv_path = folder / LABELS_CSV
    refs: list[FilmRef] = []
    if csv_path.is_file():
        with csv_path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                path = folder / row["path"]
                patient = row.get("patient_id") or path.stem
                view = view_from_code(row.get("view"))
                refs.append(FilmRef(path, source, patient, view=view))
    else:
        files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        refs = [FilmRef(p, source, p.stem) for p in files]
    return [r for r in refs if not any(fnmatch(r.path.name, pat) for pat in exclude)]


def split_patients(refs: list[FilmRef], val: float = 0.15, test: float = 0.15) -> list[FilmRef]:
    """Patient-disjoint train/val/test per source, by a stable hash of source and patient.

    Every source with at least three patients gets at least one in val and one in test.
    """
    out: list[FilmRef] = []
    for source in sorted({r.source for r in refs}):
        mine = [r for r in refs if r.source == source]
        patients = sorted(
            {r.patient for r in mine},
            key=lambda p: hashlib.sha1(f"{source}/{p}".encode()).hexdigest(),
        )
        n = len(patients)
        n_test = max(1, round(test * n)) if n >= 3 else 0
        n_val = max(1, round(val * n)) if n >= 3 else 0
        part = {p: "test" for p in patients[:n_test]}
        part.update({p: "val" for p in patients[n_test : n_test + n_val]})
        out.extend(replace(r, split=part.get(r.patient, "train")) for r in mine)
    return out


def assign_splits(
    refs: list[FilmRef], lung_sources: Sequence[str] = LUNG_SPLIT_SOURCES
) -> list[FilmRef]:
    """The training split: `lung_sources` by `patient_part` (the lung model's split, so a
    patient the lung model is tested on is never trained on here), the rest by
    `split_patients`. Refs keep their order."""
    others = split_patients([r for r in refs if r.source not in lung_sources])
    by_key = {(r.path, r.source): r for r in others}
    return [
        replace(r, split=patient_part(r.patient))
        if r.source in lung_sources
        else by_key[(r.path, r.source)]
        for r in refs
    ]


def _decode(args: tuple[str, tuple[int, ...]]) -> list[np.ndarray] | None:
    from cxrkit.errors import ImageReadError
    from cxrkit.io import read_image, resize_film

    path, sizes = args
    try:
        image, _ = read_image(path)
    except ImageReadError as exc:
        log.warning("skipping %s", exc)
        return None
    return [np.round(resize_film(image, s, "squash") * 255).astype(np.uint8) for s in sizes]


def decode_films(
    refs: list[FilmRef], sizes: tuple[int, ...], workers: int = 2
) -> tuple[list[FilmRef], list[np.ndarray]]:
    """Decode every film once and squash it to each of `sizes` (uint8 stacks per size).

    Unreadable files are dropped (with a warning); returns (kept refs, [stack per size]).
    """
    jobs = [(str(r.path), tuple(sizes)) for r in refs]
    with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
        decoded = list(pool.map(_decode, jobs, chunksize=64))
    kept = [(r, d) for r, d in zip(refs, decoded, strict=True) if d is not None]
    stacks = [np.stack([d[i] for _, d in kept]) for i in range(len(sizes))]
    return [r for r, _ in kept], stacks
