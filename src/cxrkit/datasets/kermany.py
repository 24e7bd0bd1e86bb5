"""Kermany et al. (Cell 2018) pediatric pneumonia films: official train / test folders,
normal / pneumonia with bacterial / viral subtype in the file name."""

from __future__ import annotations

import re
from pathlib import Path

from cxrkit.datasets.common import FilmRow, Prepared, PrepareOptions
from cxrkit.datasets.registry import DatasetSpec, RemoteFile, register_dataset
from cxrkit.errors import DatasetError

KERMANY_URL = (
    "https://data.mendeley.com/public-files/datasets/rscbjbr9sj/files/"
    "f12eaf6d-6023-432f-acc9-80c9d7393433/file_downloaded"
)
_PERSON = re.compile(r"^(person\d+)_(bacteria|virus)", re.IGNORECASE)
_NORMAL = re.compile(r"^((?:NORMAL2-)?IM-\d+)", re.IGNORECASE)
_SUFFIXES = (".jpeg", ".jpg", ".png")


def film_facts(name: str, folder: str) -> tuple[str, str, str]:
    """(label, subtype, patient id) from a Kermany file name and its class folder."""
    m = _PERSON.match(name)
    if m:
        subtype = "bacterial" if m.group(2).lower() == "bacteria" else "viral"
        return "pneumonia", subtype, m.group(1).lower()
    label = "pneumonia" if folder.upper() == "PNEUMONIA" else "normal"
    m = _NORMAL.match(name)
    return label, "none" if label == "normal" else "", m.group(1).upper() if m else Path(name).stem


def prepare(options: PrepareOptions) -> Prepared:
    """Films of {train,val,test}/{NORMAL,PNEUMONIA}/ (any depth, e.g. chest_xray/ or
    CellData/chest_xray/), the official split as a `split` column."""
    rows = []
    for split in ("train", "val", "test"):
        for folder_path in sorted(options.root.rglob(f"{split}/*")):
            if not folder_path.is_dir() or folder_path.name.upper() not in ("NORMAL", "PNEUMONIA"):
                continue
            if "__MACOSX" in folder_path.parts:
                continue
            for path in sorted(folder_path.iterdir()):
                if path.suffix.lower() not in _SUFFIXES or path.name.startswith("."):
                    continue
                label, subtype, patient = film_facts(path.name, folder_path.name)
                rows.append(
                    FilmRow(
                        path=path,
                        label=label,
                        patient_id=patient,
                        view="AP",
                        age="",
                        extra={"subtype": subtype, "split": split},
                    )
                )
    if not rows:
        raise DatasetError(f"{options.root}: no train|test/NORMAL|PNEUMONIA/*.jpeg films found")
    notes = [
        "patients of normal films are inferred from the IM-NNNN part of the name",
        "the official test split stays marked (split=test): keep it out of training",
    ]
    return Prepared(rows=rows, findings=[], multilabel=False, notes=notes)


SPEC = register_dataset(
    DatasetSpec(
        name="kermany",
        title="Kermany pediatric pneumonia (ChestXRay2017)",
        licence="CC BY 4.0 (Mendeley Data doi:10.17632/rscbjbr9sj)",
        citation="Kermany et al., Cell 172(5) 2018",
        labels="normal / pneumonia, subtype bacterial / viral",
        task="binary",
        prepare=prepare,
        layout="chest_xray/{train,test}/{NORMAL,PNEUMONIA}/*.jpeg",
        files=(RemoteFile("ChestXRay2017.zip", KERMANY_URL),),
        aliases=("zhanglab", "pediatric-pneumonia"),
    )
)
