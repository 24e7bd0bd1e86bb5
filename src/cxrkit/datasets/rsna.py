"""RSNA Pneumonia Detection Challenge (2018): 26,684 NIH films (DICOM) with lung-opacity boxes."""

from __future__ import annotations

from cxrkit.datasets.common import FilmRow, Prepared, PrepareOptions, need_file, read_csv
from cxrkit.datasets.registry import DatasetSpec, register_dataset
from cxrkit.errors import DatasetError


def prepare(options: PrepareOptions) -> Prepared:
    """One row per patientId of stage_2_train_labels.csv (Target 1 = Pneumonia, its boxes
    kept); view, sex and age from the DICOM-header table when it is under --root."""
    root = options.root
    labels = need_file(root, "stage_2_train_labels.csv", "kaggle_stage_2_train_labels.csv")
    try:
        headers = {
            r["PatientID"]: r
            for r in read_csv(
                need_file(
                    root,
                    "stage_2_train_images_dicom_headers.csv",
                    "kaggle_stage_2_train_images_dicom_headers.csv",
                )
            )
        }
    except DatasetError:
        headers = {}
    image_dir = next(
        (root / d for d in ("stage_2_train_images", "stage_1_train_images") if (root / d).is_dir()),
        root / "stage_2_train_images",
    )
    rows: dict[str, FilmRow] = {}
    boxes = []
    for r in read_csv(labels):
        pid = r["patientId"]
        path = image_dir / f"{pid}.dcm"
        if pid not in rows:
            h = headers.get(pid, {})
            rows[pid] = FilmRow(
                path=path,
                patient_id=pid,
                view=h.get("ViewPosition", ""),
                sex=h.get("PatientSex", ""),
                age=h.get("PatientAge", ""),
            )
        if r["Target"] == "1":
            if "Pneumonia" not in rows[pid].findings:
                rows[pid].findings.append("Pneumonia")
            if r.get("x"):
                x, y, w, h_ = (float(r[k]) for k in ("x", "y", "width", "height"))
                boxes.append((path, "Pneumonia", x, y, w, h_, "rsna"))
    notes = ["each patientId is one film (RSNA gives no cross-film patient id)"]
    if not headers:
        notes.append("no DICOM-header table under root: view, sex and age left empty")
    return Prepared(
        rows=list(rows.values()), findings=["Pneumonia"], multilabel=True, boxes=boxes, notes=notes
    )


SPEC = register_dataset(
    DatasetSpec(
        name="rsna",
        title="RSNA Pneumonia Detection Challenge",
        licence="Kaggle competition rules (RSNA; NIH ChestX-ray14 images, CC0)",
        citation="Shih et al., Radiology: AI 1(1) 2019",
        labels="Pneumonia (lung opacity) with boxes",
        task="multilabel",
        prepare=prepare,
        layout="stage_2_train_labels.csv, stage_2_train_images/*.dcm, optional "
        "stage_2_train_images_dicom_headers.csv",
        access="Accept the competition rules at https://www.kaggle.com/c/rsna-pneumonia-detection-"
        "challenge and download with the kaggle client, then: cxr data prepare rsna --root DIR",
        aliases=("rsna-pneumonia",),
    )
)
