"""TBX11K (Liu et al., CVPR 2020): 11,200 films, healthy / sick-but-not-TB / TB, TB boxes."""

from __future__ import annotations

import json
from pathlib import Path

from cxrkit.datasets.common import FilmRow, Prepared, PrepareOptions
from cxrkit.datasets.registry import DatasetSpec, register_dataset
from cxrkit.errors import DatasetError

# The TB project's three classes, from TBX11K's folders.
CLASSES = {"health": "healthy", "sick": "sick_but_not_tb", "tb": "tb"}


def _lists(root: Path) -> dict[str, str]:
    """image (e.g. 'tb/tb0005.png') -> official split, from lists/TBX11K_{train,val}.txt."""
    out = {}
    for split in ("train", "val"):
        for path in root.rglob(f"TBX11K_{split}.txt"):
            for line in path.read_text().split():
                out[line.strip()] = split
    return out


def prepare(options: PrepareOptions) -> Prepared:
    """Films of imgs/{health,sick,tb}/ (test/ and extra/ carry no labels and are left out),
    the official train/val split when lists/ is there, boxes from the COCO json files."""
    root = options.root
    imgs = root / "imgs" if (root / "imgs").is_dir() else root
    split = _lists(root)
    rows = []
    for folder, label in CLASSES.items():
        for path in sorted((imgs / folder).glob("*.png")):
            rel = f"{folder}/{path.name}"
            extra = {"split": split.get(rel, "")} if split else {}
            rows.append(FilmRow(path=path, label=label, patient_id=path.stem, extra=extra))
    if not rows:
        raise DatasetError(f"{root}: no films under imgs/health, imgs/sick or imgs/tb")
    boxes = []
    for ann in sorted(root.rglob("annotations/json/*.json")):
        coco = json.loads(ann.read_text())
        names = {c["id"]: c["name"] for c in coco.get("categories", [])}
        files = {i["id"]: i["file_name"] for i in coco.get("images", [])}
        for a in coco.get("annotations", []):
            x, y, w, h = (float(v) for v in a["bbox"])
            boxes.append(
                (imgs / files[a["image_id"]], names[a["category_id"]], x, y, w, h, "tbx11k")
            )
    seen = set()
    boxes = [b for b in boxes if not (b in seen or seen.add(b))]  # train/val json overlap
    notes = ["each film is one patient (TBX11K publishes no patient id)"]
    return Prepared(rows=rows, findings=[], multilabel=False, boxes=boxes, notes=notes)


SPEC = register_dataset(
    DatasetSpec(
        name="tbx11k",
        title="TBX11K",
        licence="CC BY-NC-SA 4.0 (TBX11K authors)",
        citation="Liu et al., Rethinking Computer-aided Tuberculosis Diagnosis, CVPR 2020",
        labels="healthy / sick_but_not_tb / tb, TB boxes (3 categories)",
        task="multiclass",
        prepare=prepare,
        layout="imgs/{health,sick,tb}/*.png, lists/TBX11K_{train,val}.txt, "
        "annotations/json/TBX11K_{train,val}.json",
        access="Download TBX11K from the authors' page (https://mmcheng.net/tb/ ; Google Drive "
        "/ Baidu links), unpack, then: cxr data prepare tbx11k --root DIR",
    )
)
