"""Prediction split across machines: `cxr predict ... --part K/N`, then `cxr predict-merge`.

Part K of N takes films K, K+N, K+2N, ... of the sorted film list (0-based K, as torchrun's
RANK or a SLURM array's task id), so the parts are disjoint, cover every film and are the
same on every machine that sees the same list. Each part writes its rows (CSV or JSON) and
beside them `OUT.part.json`: the model file's sha256, K and N, and the sha256 of the whole
film list. `merge_parts` checks that the parts come from one model and one list, that each
K is there once and that every film appears exactly once (unreadable films included: their
rows carry the error), then writes the rows in the order a single run gives.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

from cxrkit.errors import CxrkitError
from cxrkit.io.atomic import atomic_write_text

T = TypeVar("T")
RECORD_SUFFIX = ".part.json"
_PART = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


def parse_part(text: str) -> tuple[int, int]:
    """`"K/N"` -> (K, N) with N >= 1 and 0 <= K < N; anything else is a one-line error."""
    match = _PART.match(str(text))
    if not match:
        raise CxrkitError(f"part={text}: give K/N, e.g. 0/2 (K counts from 0, as torchrun's RANK)")
    k, n = int(match.group(1)), int(match.group(2))
    if n < 1:
        raise CxrkitError(f"part={text}: N must be at least 1")
    if k >= n:
        raise CxrkitError(f"part={text}: K must be below N (parts 0 to {n - 1})")
    return k, n


def select_part(films: Sequence[T], k: int, n: int) -> list[T]:
    """Films K, K+N, K+2N, ... of `films` (in their order)."""
    return list(films[k::n])


def list_sha256(films: Sequence[str | Path]) -> str:
    """The sha256 of a film list (one path per line, in order): parts must share it."""
    return hashlib.sha256("\n".join(str(f) for f in films).encode()).hexdigest()


def record_path(out: str | Path) -> Path:
    """Where the record of the part written to `out` goes (`OUT.part.json`)."""
    return Path(f"{out}{RECORD_SUFFIX}")


def write_part_record(
    out: str | Path, model_sha256: str, k: int, n: int, films: Sequence[str | Path]
) -> Path:
    """Write the record of part K of N, predicted from the whole list `films`."""
    record = {
        "model_sha256": model_sha256,
        "part": [k, n],
        "films_total": len(films),
        "films_in_part": len(select_part(films, k, n)),
        "list_sha256": list_sha256(films),
    }
    return atomic_write_text(record_path(out), json.dumps(record, indent=2) + "\n")


def merge_parts(parts: Sequence[str | Path], out: str | Path) -> dict[str, Any]:
    """Join the outputs of every part into `out` (CSV or JSON, as the parts), in the order a
    single run writes; returns a summary. Refuses parts of other models or film lists, a
    missing or repeated part, and a film that is missing or appears twice."""
    if not parts:
        raise CxrkitError("no part files to merge")
    records = [_read_record(Path(p)) for p in parts]
    first = records[0]
    n = first["part"][1]
    for path, rec in zip(parts, records, strict=True):
        if rec["model_sha256"] != first["model_sha256"]:
            raise CxrkitError(
                f"{path}: predicted by another model than {parts[0]} (model sha256 "
                f"{rec['model_sha256'][:12]} vs {first['model_sha256'][:12]}); merge parts "
                "of one model only"
            )
        if rec["list_sha256"] != first["list_sha256"] or rec["part"][1] != n:
            raise CxrkitError(
                f"{path}: a part of another film list or another N than {parts[0]}; "
                "every part must be run on the same films with the same N"
            )
    ks = sorted(rec["part"][0] for rec in records)
    if ks != list(range(n)):
        missing = sorted(set(range(n)) - set(ks))
        repeated = sorted({k for k in ks if ks.count(k) > 1})
        raise CxrkitError(
            f"parts of {n}: missing {missing or 'none'}, given twice {repeated or 'none'}"
        )
    suffixes = {Path(p).suffix.lower() for p in parts}
    if len(suffixes) != 1 or Path(out).suffix.lower() not in suffixes:
        raise CxrkitError(f"out={out}: parts and output must all be .csv or all .json")
    by_k = {rec["part"][0]: (Path(p), rec) for p, rec in zip(parts, records, strict=True)}
    header, rows_of = None, {}
    for k, (path, rec) in by_k.items():
        head, rows = _read_rows(path)
        if header is not None and head != header:
            raise CxrkitError(f"{path}: its columns differ from the other parts'")
        header = head
        if len(rows) != rec["films_in_part"]:
            raise CxrkitError(
                f"{path}: {len(rows)} rows for {rec['films_in_part']} films (an unfinished part?)"
            )
        rows_of[k] = rows
    merged = [rows_of[i % n][i // n] for i in range(first["films_total"])]
    names = [_path_of(r) for r in merged]
    if len(set(names)) != len(names):
        twice = sorted({x for x in names if names.count(x) > 1})[:3]
        raise CxrkitError(f"films appear more than once across the parts: {twice}")
    _write_rows(Path(out), header, merged)
    return {"parts": n, "films": len(merged), "out": str(out)}


def _read_record(path: Path) -> dict[str, Any]:
    rec_path = record_path(path)
    try:
        rec = json.loads(rec_path.read_text())
        _ = rec["model_sha256"], rec["part"][1], rec["films_total"], rec["list_sha256"]
    except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
        raise CxrkitError(
            f"{path}: no readable part record {rec_path.name} (written by a predict run with "
            f"`part` set); {exc}"
        ) from exc
    return rec


def _read_rows(path: Path) -> tuple[list[str] | None, list[Any]]:
    text = path.read_text(encoding="utf-8")
    if path.suffix.lower() == ".json":
        return None, json.loads(text)
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    return header, list(reader)


def _path_of(row: Any) -> str:
    return str(row["path"] if isinstance(row, dict) else row[0])


def _write_rows(out: Path, header: list[str] | None, rows: list[Any]) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix.lower() == ".json":
        atomic_write_text(out, json.dumps(rows, indent=2))
        return
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    writer.writerow(header or [])
    writer.writerows(rows)
    atomic_write_text(out, buffer.getvalue())
