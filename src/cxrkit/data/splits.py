"""Patient-disjoint, stratified train/val/test splits, and their CSV form."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from cxrkit.data.table import LabelTable
from cxrkit.errors import DatasetError
from cxrkit.io.atomic import atomic_write_text

SPLITS = ("train", "val", "test")
_ALIASES = {"valid": "val", "validation": "val", "dev": "val"}


def strata_matrix(table: LabelTable) -> np.ndarray:
    """(N, K) 0/1 matrix the splits are balanced on: one-hot classes, or for multilabel
    the multi-hot findings plus a last "no finding" column."""
    targets = table.targets()
    if table.task != "multilabel":
        return np.eye(table.num_classes, dtype=np.float64)[targets]
    none = (targets.sum(axis=1) == 0).astype(np.float64)
    return np.concatenate([targets.astype(np.float64), none[:, None]], axis=1)


def make_splits(
    table: LabelTable, val: float = 0.15, test: float = 0.15, seed: int = 0
) -> dict[str, np.ndarray]:
    """Split record indices into 'train'/'val'/'test', patient-disjoint and stratified.

    Patients are assigned greedily, largest first (equal sizes in a seeded random order),
    each to the part with the most room left for its classes; then single-patient moves
    that lower a chi-square distance to the per-class and per-part quotas are applied
    while they help. Multilabel sets are balanced on every finding plus "no finding".
    Returns sorted int64 index arrays; the same seed gives the same split.
    """
    if not (0 <= val < 1 and 0 <= test < 1 and val + test < 1):
        raise DatasetError(
            f"split fractions must be in [0, 1) with val + test < 1; got val={val}, test={test}"
        )
    fractions = np.array([1.0 - val - test, val, test])
    groups = _patient_groups(table)
    strat = strata_matrix(table)
    # Per-patient counts per stratum, plus the image count as a last column.
    counts = np.array([np.append(strat[m].sum(axis=0), len(m)) for m in groups])
    quota = fractions[:, None] * counts.sum(axis=0)[None, :]
    assignment = _greedy(counts, quota, seed)
    assignment = _refine(counts, quota, assignment, active=fractions > 0)
    out: dict[str, np.ndarray] = {}
    for p, name in enumerate(SPLITS):
        idx = [i for g in np.flatnonzero(assignment == p) for i in groups[g]]
        out[name] = np.array(sorted(idx), dtype=np.int64)
    return out


def _patient_groups(table: LabelTable) -> list[list[int]]:
    patients: dict[str, list[int]] = {}
    for i, pid in enumerate(table.patient_ids()):
        patients.setdefault(pid, []).append(i)
    return list(patients.values())


def _greedy(counts: np.ndarray, quota: np.ndarray, seed: int) -> np.ndarray:
    sizes = counts[:, -1]
    shuffled = np.random.default_rng(seed).permutation(len(counts))
    order = shuffled[np.argsort(-sizes[shuffled], kind="stable")]
    filled = np.zeros_like(quota)
    active = quota[:, -1] > 0
    assignment = np.empty(len(counts), dtype=np.int64)
    for g in order:
        c = counts[g, :-1]
        room = ((quota[:, :-1] - filled[:, :-1]) * c[None, :]).sum(axis=1) / max(c.sum(), 1.0)
        part = int(np.argmax(np.where(active, room, -np.inf)))
        assignment[g] = part
        filled[part] += counts[g]
    return assignment


def _refine(
    counts: np.ndarray, quota: np.ndarray, assignment: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """Move one patient at a time while that lowers sum((filled - quota)^2 / quota)."""
    assignment = assignment.copy()
    filled = np.zeros_like(quota)
    np.add.at(filled, assignment, counts)
    inv_q = 1.0 / np.maximum(quota, 1.0)
    sq = counts * counts
    rows = np.arange(len(counts))
    for _ in range(20 * len(counts)):
        dev = filled - quota
        leave = ((sq - 2.0 * dev[assignment] * counts) * inv_q[assignment]).sum(axis=1)
        join = sq @ inv_q.T + 2.0 * counts @ (dev * inv_q).T
        delta = leave[:, None] + join
        delta[rows, assignment] = np.inf
        delta[:, ~active] = np.inf
        g, part = np.unravel_index(int(np.argmin(delta)), delta.shape)
        if delta[g, part] > -1e-9:
            break
        filled[assignment[g]] -= counts[g]
        filled[part] += counts[g]
        assignment[g] = part
    return assignment


def write_split_csv(path: str | Path, table: LabelTable, splits: dict[str, np.ndarray]) -> Path:
    """Write `path,patient_id,split` rows (paths relative to the table root), one per record."""
    part_of = _part_of(table, splits)
    unassigned = [table.relpath(i) for i, name in enumerate(part_of) if not name]
    if unassigned:
        raise DatasetError(
            f"{len(unassigned)} record(s) are in no split, e.g. {unassigned[:3]}; "
            "a split file must cover the whole table"
        )
    buf = io.StringIO(newline="")
    writer = csv.writer(buf)
    writer.writerow(["path", "patient_id", "split"])
    for i, rec in enumerate(table.records):
        writer.writerow([table.relpath(rec), rec.patient_id, part_of[i]])
    return atomic_write_text(path, buf.getvalue())  # `--resume` reads it back: never half


def read_split_csv(path: str | Path, table: LabelTable) -> dict[str, np.ndarray]:
    """Read a split CSV written by `write_split_csv` back into index arrays for `table`.

    Raises `DatasetError` if the CSV's paths and the table's paths differ, or a split
    name is not train/val/test.
    """
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            reader = csv.DictReader(fh)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            rows = [{(k or "").strip(): (v or "").strip() for k, v in r.items()} for r in reader]
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read split file ({exc})") from exc
    for needed in ("path", "split"):
        if needed not in columns:
            raise DatasetError(
                f"{path}: missing column {needed!r}; columns present: {', '.join(columns)}"
            )
    index = {rec.path: i for i, rec in enumerate(table.records)}
    parts: dict[str, list[int]] = {name: [] for name in SPLITS}
    seen: set[int] = set()
    unknown_paths: list[str] = []
    for row in rows:
        name = _ALIASES.get(row["split"].lower(), row["split"].lower())
        if name not in parts:
            raise DatasetError(
                f"{path}: unknown split {row['split']!r} for {row['path']} (use train/val/test)"
            )
        i = index.get(table.root / row["path"])
        if i is None:
            unknown_paths.append(row["path"])
            continue
        if i in seen:
            raise DatasetError(f"{path}: {row['path']} is listed twice")
        seen.add(i)
        parts[name].append(i)
    missing = [table.relpath(i) for i in range(len(table)) if i not in seen]
    if unknown_paths or missing:
        detail = []
        if unknown_paths:
            detail.append(
                f"{len(unknown_paths)} path(s) not in the table, e.g. {unknown_paths[:3]}"
            )
        if missing:
            detail.append(f"{len(missing)} table path(s) not in the file, e.g. {missing[:3]}")
        raise DatasetError(f"{path}: split file does not match the dataset: {'; '.join(detail)}")
    return {name: np.array(sorted(idx), dtype=np.int64) for name, idx in parts.items()}


def _part_of(table: LabelTable, splits: dict[str, np.ndarray]) -> list[str]:
    part_of = [""] * len(table)
    for name, idx in splits.items():
        for i in np.asarray(idx, dtype=np.int64).tolist():
            if not 0 <= i < len(table):
                raise DatasetError(
                    f"split {name!r} has index {i} outside the table (0..{len(table) - 1})"
                )
            if part_of[i]:
                raise DatasetError(f"record {i} is in both {part_of[i]!r} and {name!r}")
            part_of[i] = name
    return part_of
