"""NIH ChestX-ray14 (Wang et al., CVPR 2017): 112,120 frontal films, 14 text-mined findings."""

from __future__ import annotations

import csv
from pathlib import Path

from cxrkit.datasets.common import (
    FilmRow,
    Prepared,
    PrepareOptions,
    index_files,
    need_file,
    open_text,
    read_csv,
)
from cxrkit.datasets.registry import DatasetSpec, RemoteFile, register_dataset
from cxrkit.datasets.vocab import canonical
from cxrkit.errors import DatasetError

NIH_FINDINGS = [
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Emphysema", "Fibrosis",
    "Hernia", "Infiltration", "Mass", "Nodule", "Pleural Effusion", "Pleural Thickening",
    "Pneumonia", "Pneumothorax",
]  # fmt: skip

# The 12 image tarballs, as listed in the owners' batch_download_zips.py (NIH box.com).
_BOX = "https://nihcc.box.com/shared/static/"
_TARBALLS = (
    "vfk49d74nhbxq3nqjg0900w5nvkorp5c", "i28rlmbvmfjbl8p2n3ril0pptcmcu9d1",
    "f1t00wrtdk94satdfb9olcolqx20z2jp", "0aowwzs5lhjrceb3qp67ahp0rd1l1etg",
    "v5e3goj22zr6h8tzualxfsqlqaygfbsn", "asi7ikud9jwnkrnkj99jnpfkjdes7l6l",
    "jn1b4mw4n6lnh74ovmcjb8y48h8xj07n", "tvpxmn7qyrgl0w8wfh9kqfjskv6nmm1j",
    "upyy3ml7qdumlgk2rfcvlb9k6gvqq2pj", "l6nilvfa9cg3s28tqv1qc1olm3gnz54p",
    "hhq8fkdgvcari67vfhs7ppg2w6ni4jze", "ioqwiy20ihqwyr8pf4c24eazhh281pbu",
)  # fmt: skip


def _findings(value: str) -> list[str]:
    out = []
    for name in value.split("|"):
        c = canonical(name)
        if c:
            out.append(c)
    return out


def _read_split(root: Path) -> dict[str, str]:
    split: dict[str, str] = {}
    for fname, name in (("train_val_list.txt", "train"), ("test_list.txt", "test")):
        try:
            path = need_file(root, fname)
        except DatasetError:
            continue
        for line in path.read_text().split():
            split[line.strip()] = name
    return split


def prepare(options: PrepareOptions) -> Prepared:
    """Rows of Data_Entry_2017(_v2020).csv; boxes of BBox_List_2017.csv; the official
    train/test lists as a `split` column when they are under --root."""
    root = options.root
    entry = need_file(root, "Data_Entry_2017_v2020.csv", "Data_Entry_2017.csv")
    files = index_files(root, (".png",))
    split = _read_split(root)
    rows = []
    by_name: dict[str, Path] = {}
    for r in read_csv(entry):
        name = r["Image Index"]
        path = files.get(name, root / "images" / name)
        by_name[name] = path
        extra = {"follow_up": r.get("Follow-up #", "")}
        if split:
            extra["split"] = split.get(name, "")
        rows.append(
            FilmRow(
                path=path,
                findings=_findings(r["Finding Labels"]),
                patient_id=r["Patient ID"],
                view=r.get("View Position", ""),
                sex=r.get("Patient Gender", r.get("Patient Sex", "")),
                age=r.get("Patient Age", ""),
                extra=extra,
            )
        )
    boxes = []
    try:
        bbox = need_file(root, "BBox_List_2017.csv")
    except DatasetError:
        bbox = None
    if bbox is not None:
        with open_text(bbox) as fh:
            reader = csv.reader(fh)
            next(reader, None)
            for rec in reader:
                if len(rec) < 6 or rec[0] not in by_name:
                    continue
                finding = canonical(rec[1]) or rec[1]
                x, y, w, h = (float(v) for v in rec[2:6])
                boxes.append((by_name[rec[0]], finding, x, y, w, h, "nih"))
    notes = ["findings renamed to the cxrkit vocabulary (Effusion -> Pleural Effusion, ...)"]
    if not split:
        notes.append("no train_val_list.txt / test_list.txt under root: no split column")
    return Prepared(rows=rows, findings=NIH_FINDINGS, multilabel=True, boxes=boxes, notes=notes)


SPEC = register_dataset(
    DatasetSpec(
        name="nih",
        title="NIH ChestX-ray14",
        licence="CC0 1.0 (NIH Clinical Center; cite the paper)",
        citation="Wang et al., ChestX-ray8, CVPR 2017",
        labels="14 findings, multi-label; 984 boxes on 880 films for 8 findings",
        task="multilabel",
        prepare=prepare,
        layout="Data_Entry_2017_v2020.csv (or .csv.gz), images/*.png (any depth), "
        "optional BBox_List_2017.csv, train_val_list.txt, test_list.txt",
        files=tuple(
            RemoteFile(f"images_{i + 1:02d}.tar.gz", _BOX + key + ".gz")
            for i, key in enumerate(_TARBALLS)
        ),
        aliases=("chestx-ray14", "chestxray14", "nih14"),
    )
)
