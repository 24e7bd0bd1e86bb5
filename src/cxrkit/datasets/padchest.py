"""PadChest (Bustos et al., 2020): 160,868 films of 67,625 patients, Hospital San Juan
(Alicante); 174 radiographic findings from Spanish reports. Behind a registration (BIMCV)."""

from __future__ import annotations

import ast

from cxrkit.datasets.common import (
    FilmRow,
    Prepared,
    PrepareOptions,
    index_files,
    need_file,
    read_csv,
)
from cxrkit.datasets.registry import DatasetSpec, register_dataset
from cxrkit.datasets.vocab import canonical

_VIEWS = {"PA": "PA", "AP": "AP", "AP_HORIZONTAL": "AP Supine", "L": "L"}
# The vocabulary findings PadChest's labels map to (see vocab.SYNONYMS).
PADCHEST_FINDINGS = [
    "Aortic Enlargement", "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Emphysema",
    "Fibrosis", "Fracture", "Granuloma", "Hernia", "ILD", "Infiltration", "Kyphosis", "Mass",
    "Nodule", "Pleural Effusion", "Pleural Thickening", "Pneumonia", "Pneumothorax",
    "Scoliosis", "Support Devices", "Tuberculosis",
]  # fmt: skip


def parse_labels(value: str) -> list[str]:
    """PadChest's Labels cell (a Python list literal) as a list of stripped strings."""
    if not value or value in ("nan", "[]"):
        return []
    try:
        items = ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return []
    return [str(i).strip() for i in items if str(i).strip()]


def prepare(options: PrepareOptions) -> Prepared:
    """Rows of the PadChest CSV; labels through the synonym table, the rest kept raw."""
    root = options.root
    table = need_file(root, "PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv")
    files = index_files(root, (".png",))
    rows = []
    excluded = 0
    for r in read_csv(table):
        raw = parse_labels(r.get("Labels", ""))
        if any(x in ("exclude", "suboptimal study") for x in raw):
            excluded += 1
            continue
        findings = []
        for item in raw:
            c = canonical(item)
            if c:
                findings.append(c)
        name = r["ImageID"]
        path = files.get(name, root / r.get("ImageDir", "") / name)
        age = ""
        birth, date = r.get("PatientBirth", ""), r.get("StudyDate_DICOM", "")
        if birth not in ("", "None", "nan") and len(date) >= 4:
            age = str(int(date[:4]) - int(float(birth)))
        projection = r.get("Projection", "").upper()
        rows.append(
            FilmRow(
                path=path,
                findings=list(dict.fromkeys(findings)),
                patient_id=r["PatientID"],
                view=_VIEWS.get(projection, projection),
                sex=r.get("PatientSex_DICOM", ""),
                age=age,
                extra={
                    "study_id": r.get("StudyID", ""),
                    "raw_labels": "|".join(raw),
                    "label_method": r.get("MethodLabel", ""),
                },
            )
        )
    notes = [
        f"{excluded} films labelled 'exclude' / 'suboptimal study' left out",
        "labels outside the vocabulary are kept in raw_labels, never as negatives",
    ]
    return Prepared(rows=rows, findings=PADCHEST_FINDINGS, multilabel=True, notes=notes)


SPEC = register_dataset(
    DatasetSpec(
        name="padchest",
        title="PadChest",
        licence="PadChest Dataset Research Use Agreement (BIMCV), CC BY-SA 4.0 images",
        citation="Bustos et al., PadChest, Medical Image Analysis 66 (2020)",
        labels="174 report findings (mapped through the synonym table), multi-label",
        task="multilabel",
        prepare=prepare,
        layout="PADCHEST_chest_x_ray_images_labels_160K_01.02.19.csv(.gz), IMAGEDIR/*.png",
        access="Request access at https://bimcv.cipf.es/bimcv-projects/padchest/ , unpack, "
        "then: cxr data prepare padchest --root DIR",
    )
)
