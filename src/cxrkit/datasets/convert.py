"""`cxr data convert`: a prepared set as resized PNG copies, or as WebDataset tar shards.

Films are read with cxrkit's reader (PNG, JPEG, DICOM; MONOCHROME1 inverted), scaled so
the longer side is `size` (aspect kept, never enlarged) and written as 8- or 16-bit PNG.
`webdataset` packs each film as KEY.png + KEY.json (its labels.csv row) into
shard-NNNNNN.tar files of about `shard_size` bytes, the WebDataset convention (samples are
consecutive members sharing a KEY with no dot in it), with a labels.csv beside them naming
each film's shard and key. Films go into the shards in a seeded random order (`seed`), not
in labels.csv order: a labels.csv sorted by class would otherwise give shards of one class
each, and a streamed epoch that reads a few shards would see one class. Plain `tarfile`
writes them: the format is just a tar, and
fixed member metadata (mtime 0, uid 0) makes a rerun byte-identical, which the
`webdataset` writer does not promise.

Resumable: PNG copies already written are skipped; finished shards are listed in
shards.json and a rerun continues after the last one. Masks (a `mask` column) are resized
with nearest neighbour beside the films; boxes.csv coordinates are scaled to the new size.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tarfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cxrkit.data.table import LABELS_CSV, MULTILABEL_SEP, UNCERTAIN_COLUMN
from cxrkit.errors import DatasetError
from cxrkit.io.atomic import atomic_write_text

FORMATS = ("png8", "png16", "webdataset")
SHARDS_FILE = "shards.json"
SCALES_FILE = "scales.json"  # per film (x, y) resize factor, for boxes
# One line per film as its PNG is written, so a killed run's films keep their box scale.
SCALES_JOURNAL = "scales.partial.jsonl"
RECORD_FILE = "convert.json"  # format and size of the copies in a folder
_UNITS = {"": 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KIB": 1024, "MIB": 1024**2,
          "GIB": 1024**3}  # fmt: skip


def parse_size(text: str | int) -> int:
    """Bytes from '1GB', '500MB', '64MiB' or a plain number."""
    if isinstance(text, int):
        return text
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMG]I?B|B)?\s*", str(text).upper())
    if not m or float(m.group(1)) <= 0:
        raise DatasetError(f"shard size must look like 1GB, 500MB or 64MiB, got {text!r}")
    return int(float(m.group(1)) * _UNITS[m.group(2) or ""])


def sample_key(rel: str) -> str:
    """A WebDataset key for a film path: no dots, '/' -> '__' (unique for unique paths)."""
    stem = rel.rsplit(".", 1)[0] if "." in Path(rel).name else rel
    return re.sub(r"[^A-Za-z0-9_\-]", "_", stem.replace("/", "__"))


@dataclass
class _Film:
    key: str
    row: dict[str, str]
    png: bytes = b""
    mask_png: bytes = b""
    scale: tuple[float, float] = (1.0, 1.0)
    error: str = ""


def _encode(
    image: np.ndarray, size: int, bits: int, nearest: bool = False
) -> tuple[bytes, tuple[float, float]]:
    from PIL import Image

    h, w = image.shape
    factor = min(1.0, size / max(h, w))
    nh, nw = max(1, round(h * factor)), max(1, round(w * factor))
    if nearest:
        pil = Image.fromarray(image).resize((nw, nh), Image.Resampling.NEAREST)
    else:
        pil = Image.fromarray(image.astype(np.float32), mode="F")
        if (nh, nw) != (h, w):
            pil = pil.resize((nw, nh), Image.Resampling.BILINEAR)
        arr = np.clip(np.asarray(pil), 0.0, 1.0)
        if bits == 16:
            pil = Image.fromarray((arr * 65535.0 + 0.5).astype(np.uint16))
        else:
            pil = Image.fromarray((arr * 255.0 + 0.5).astype(np.uint8))
    buf = io.BytesIO()
    pil.save(buf, format="PNG", compress_level=6)
    return buf.getvalue(), (nw / w, nh / h)


def _load(film: _Film, root: Path, size: int, bits: int) -> _Film:
    from PIL import Image

    from cxrkit.errors import ImageReadError
    from cxrkit.io import read_image

    try:
        image, _meta = read_image(root / film.row["path"])
    except ImageReadError as exc:
        film.error = str(exc)
        return film
    film.png, film.scale = _encode(image, size, bits)
    mask = film.row.get("mask", "")
    if mask:
        arr = np.asarray(Image.open(root / mask).convert("L"))
        film.mask_png, _ = _encode(arr, size, 8, nearest=True)
    return film


def _read_rows(dataset: Path) -> tuple[Path, list[str], list[dict[str, str]]]:
    csv_path = dataset / LABELS_CSV if dataset.is_dir() else dataset
    if not csv_path.is_file():
        raise DatasetError(f"{dataset}: no {LABELS_CSV} (convert reads a prepared set)")
    with csv_path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        columns = list(reader.fieldnames or [])
    if "path" not in columns or not rows:
        raise DatasetError(f"{csv_path}: needs a 'path' column and at least one row")
    return csv_path.parent, columns, rows


def _tarinfo(name: str, size: int) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = size, 0, 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _sample_json(film: _Film) -> bytes:
    row = dict(film.row)
    for col in ("label", UNCERTAIN_COLUMN):
        if col in row:
            row[col + "_list"] = [x for x in row[col].split(MULTILABEL_SEP) if x]  # type: ignore[assignment]
    row["key"] = film.key
    return json.dumps(row, sort_keys=True).encode()


def convert_dataset(
    dataset: str | Path,
    out: str | Path,
    size: int = 512,
    fmt: str = "png8",
    shard_size: str | int = "1GB",
    workers: int = 2,
    progress: bool = True,
    seed: int = 0,
) -> dict:
    """Write resized copies (png8 / png16) or WebDataset shards of a prepared set to `out`.
    Shards hold the films in an order shuffled by `seed` (the same order on a rerun, so an
    interrupted conversion resumes where it stopped). Returns counts: films written now,
    skipped as already done, unreadable, shards."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    if fmt not in FORMATS:
        raise DatasetError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if size < 16:
        raise DatasetError(f"size must be at least 16 px, got {size}")
    limit = parse_size(shard_size)
    root, columns, rows = _read_rows(Path(dataset))
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    _check_record(out, fmt, size)
    films = [_Film(sample_key(r["path"]), r) for r in rows]
    if len({f.key for f in films}) != len(films):
        raise DatasetError(f"{root}: two rows give the same film key (duplicate paths?)")
    bits = 16 if fmt == "png16" else 8
    done_keys: set[str] = set()
    shards: list[dict] = []
    if fmt == "webdataset" and (out / SHARDS_FILE).is_file():
        shards = json.loads((out / SHARDS_FILE).read_text())["shards"]
        done_keys = {k for s in shards for k in s["keys"]}
    elif fmt != "webdataset":
        done_keys = {f.key for f in films if (out / "images" / f"{f.key}.png").is_file()}
    todo = [f for f in films if f.key not in done_keys]
    if fmt == "webdataset":  # shards mixed across the set, never in labels.csv order
        order = np.random.default_rng(seed).permutation(len(films))
        todo = [films[i] for i in order if films[i].key not in done_keys]
    bar = Progress(TextColumn("convert"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                   disable=not progress)  # fmt: skip
    scales = _read_journal(out / SCALES_JOURNAL) if fmt != "webdataset" else {}
    bad: list[_Film] = []

    def loaded() -> Iterator[_Film]:
        with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
            yield from pool.map(lambda f: _load(f, root, size, bits), todo)

    with bar:
        task = bar.add_task("convert", total=len(todo))
        if fmt == "webdataset":
            bad = _write_shards(loaded(), out, shards, limit, bar, task)
        else:
            with (out / SCALES_JOURNAL).open("a") as journal:
                for film in loaded():
                    bar.advance(task)
                    if film.error:
                        bad.append(film)
                        continue
                    if film.mask_png:  # the mask first: a film PNG on disk means done
                        _write_png(out / "masks" / f"{film.key}.png", film.mask_png)
                    _write_png(out / "images" / f"{film.key}.png", film.png)
                    scales[film.key] = film.scale
                    journal.write(json.dumps([film.key, list(film.scale)]) + "\n")
                    journal.flush()
    bad_keys = {f.key for f in bad}
    _write_labels(out, columns, films, fmt, shards, bad_keys)
    _write_boxes(root, out, films, scales, fmt)
    if bad:
        with (out / "unreadable.csv").open("w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(["path", "reason"])
            w.writerows([f.row["path"], f.error] for f in bad)
    return {
        "films": len(films),
        "written": len(todo) - len(bad),
        "already_done": len(done_keys),
        "unreadable": len(bad),
        "shards": len(shards),
        "format": fmt,
    }


def _check_record(out: Path, fmt: str, size: int) -> None:
    """Refuse to mix copies of another format or size into `out`; record them otherwise."""
    record = {"format": fmt, "size": size}
    path = out / RECORD_FILE
    if path.is_file():
        try:
            before = json.loads(path.read_text())
        except ValueError:
            before = None
        if before != record:
            raise DatasetError(
                f"{out} holds copies made with {before} (see {RECORD_FILE}); converting with "
                f"{record} would mix the two: choose another output folder"
            )
    atomic_write_text(path, json.dumps(record) + "\n")


def _read_journal(path: Path) -> dict[str, tuple[float, float]]:
    """Scales of films written by earlier runs; a last line cut by a kill is skipped."""
    scales: dict[str, tuple[float, float]] = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            try:
                key, (sx, sy) = json.loads(line)
            except ValueError:
                continue
            scales[str(key)] = (float(sx), float(sy))
    return scales


def _write_png(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, target)


def _write_shards(films: Iterator[_Film], out: Path, shards: list[dict], limit: int, bar, task):
    bad: list[_Film] = []
    current: list[_Film] = []
    nbytes = 0

    def flush() -> None:
        nonlocal current, nbytes
        if not current:
            return
        name = f"shard-{len(shards):06d}.tar"
        tmp = out / (name + ".tmp")
        with tarfile.open(tmp, "w", format=tarfile.USTAR_FORMAT) as tar:
            for film in current:
                members = [("png", film.png), ("json", _sample_json(film))]
                if film.mask_png:
                    members.insert(1, ("mask.png", film.mask_png))
                for ext, data in members:
                    tar.addfile(_tarinfo(f"{film.key}.{ext}", len(data)), io.BytesIO(data))
        os.replace(tmp, out / name)
        shards.append({"name": name, "keys": [f.key for f in current],
                       "scales": {f.key: f.scale for f in current}})  # fmt: skip
        atomic_write_text(out / SHARDS_FILE, json.dumps({"shards": shards}, indent=1) + "\n")
        current, nbytes = [], 0

    for film in films:
        bar.advance(task)
        if film.error:
            bad.append(film)
            continue
        if current and nbytes + len(film.png) > limit:
            flush()
        current.append(film)
        nbytes += len(film.png) + len(film.mask_png) + 1536
    flush()
    return bad


def _write_labels(out: Path, columns, films, fmt, shards, bad_keys) -> None:
    shard_of = {k: s["name"] for s in shards for k in s["keys"]}
    cols = list(columns) + (["source_path"] if "source_path" not in columns else [])
    cols += ["key", "shard"] if fmt == "webdataset" else []
    tmp = out / (LABELS_CSV + ".tmp")
    with tmp.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=cols, extrasaction="ignore")
        writer.writeheader()
        for film in films:
            if film.key in bad_keys:
                continue
            row = dict(film.row)
            row.setdefault("source_path", film.row["path"])
            if fmt == "webdataset":
                if film.key not in shard_of:
                    continue
                row["path"] = f"{film.key}.png"
                row["key"], row["shard"] = film.key, shard_of[film.key]
            else:
                row["path"] = f"images/{film.key}.png"
            if row.get("mask"):
                row["mask"] = (
                    f"masks/{film.key}.png" if fmt != "webdataset" else f"{film.key}.mask.png"
                )
            writer.writerow(row)
    os.replace(tmp, out / LABELS_CSV)


def _write_boxes(root: Path, out: Path, films, scales, fmt) -> None:
    src = root / "boxes.csv"
    if not src.is_file():
        return
    key_of = {f.row["path"]: f.key for f in films}
    if fmt == "webdataset" and (out / SHARDS_FILE).is_file():
        for s in json.loads((out / SHARDS_FILE).read_text())["shards"]:
            scales.update({k: tuple(v) for k, v in s["scales"].items()})
    elif (out / SCALES_FILE).is_file():  # films written by an earlier run
        old = json.loads((out / SCALES_FILE).read_text())
        scales.update({k: tuple(v) for k, v in old.items() if k not in scales})
    if fmt != "webdataset":
        atomic_write_text(out / SCALES_FILE, json.dumps(scales, sort_keys=True) + "\n")
    with src.open(newline="") as fh, (out / "boxes.csv").open("w", newline="") as dst:
        reader = csv.DictReader(fh)
        writer = csv.DictWriter(dst, fieldnames=list(reader.fieldnames or []))
        writer.writeheader()
        for row in reader:
            key = key_of.get(row["path"])
            if key is None:
                continue
            if key not in scales:
                continue
            sx, sy = scales[key]
            for col, s in (("x", sx), ("w", sx), ("y", sy), ("h", sy)):
                row[col] = f"{float(row[col]) * s:.2f}"
            row["path"] = f"images/{key}.png" if fmt != "webdataset" else f"{key}.png"
            writer.writerow(row)
