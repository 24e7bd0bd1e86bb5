"""Read reference boxes into `Box` lists: NIH `BBox_List_2017.csv(.gz)` and COCO json (TBX11K)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from collections import defaultdict
from pathlib import Path

from cxrkit.errors import DatasetError
from cxrkit.explain.boxes import Box

NIH_SIZE = (1024, 1024)  # (h, w) of the NIH ChestX-ray14 films the boxes refer to


def read_nih_boxes(path: str | Path) -> dict[str, list[Box]]:
    """Image file name -> boxes (label = finding) from NIH's BBox_List_2017 (csv or csv.gz).

    The file's columns are `Image Index, Finding Label, Bbox [x, y, w, h]` (the four box
    numbers spill over into unnamed columns); coordinates refer to 1024x1024 films.
    """
    path = Path(path)
    raw = path.read_bytes()
    text = gzip.decompress(raw).decode() if raw[:2] == b"\x1f\x8b" else raw.decode()
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or header[0].strip() != "Image Index":
        raise DatasetError(f"{path}: not an NIH BBox_List file (header {header!r})")
    out: dict[str, list[Box]] = defaultdict(list)
    for n, row in enumerate(reader, start=2):
        if not row or not row[0].strip():
            continue
        try:
            x, y, w, h = (float(v) for v in row[2:6])
        except ValueError as exc:
            raise DatasetError(f"{path}:{n}: bad box numbers {row[2:6]!r}") from exc
        out[row[0].strip()].append(Box.from_xywh(x, y, w, h, row[1].strip()))
    return dict(out)


def read_coco_boxes(path: str | Path) -> tuple[dict[str, list[Box]], dict[str, tuple[int, int]]]:
    """(file name -> boxes, file name -> (h, w)) from a COCO detection json (e.g. TBX11K).

    Every image listed gets an entry, with an empty list when it has no boxes; the label
    of a box is its category name.
    """
    data = json.loads(Path(path).read_text())
    try:
        names = {c["id"]: c["name"] for c in data.get("categories", [])}
        images = {im["id"]: im for im in data["images"]}
        out: dict[str, list[Box]] = {im["file_name"]: [] for im in images.values()}
        sizes = {im["file_name"]: (int(im["height"]), int(im["width"])) for im in images.values()}
        for ann in data.get("annotations", []):
            name = images[ann["image_id"]]["file_name"]
            label = names.get(ann.get("category_id"), str(ann.get("category_id")))
            out[name].append(Box.from_xywh(*ann["bbox"], label=label))
    except (KeyError, TypeError, ValueError) as exc:
        raise DatasetError(f"{path}: not a COCO detection file ({exc!r})") from exc
    return out, sizes
