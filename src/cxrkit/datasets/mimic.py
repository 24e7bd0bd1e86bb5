"""MIMIC-CXR-JPG 2.x (Johnson et al., 2019): 377,110 JPEGs of 65,379 patients with CheXpert
labeller findings per study. Credentialed access on PhysioNet."""

from __future__ import annotations

from cxrkit.datasets.chexpert import CHEXPERT_FINDINGS, labeller_findings
from cxrkit.datasets.common import FilmRow, Prepared, PrepareOptions, need_file, read_csv
from cxrkit.datasets.registry import DatasetSpec, register_dataset
from cxrkit.errors import DatasetError

_VIEWS = {"LATERAL": "L", "LL": "L", "PA": "PA", "AP": "AP"}


def prepare(options: PrepareOptions) -> Prepared:
    """One row per DICOM id of mimic-cxr-2.0.0-metadata.csv, findings from the study's
    chexpert.csv row, the official split when mimic-cxr-2.0.0-split.csv is there."""
    root = options.root
    meta = need_file(root, "mimic-cxr-2.0.0-metadata.csv")
    labels = {
        (r["subject_id"], r["study_id"]): r
        for r in read_csv(need_file(root, "mimic-cxr-2.0.0-chexpert.csv"))
    }
    try:
        split = {
            r["dicom_id"]: r["split"]
            for r in read_csv(need_file(root, "mimic-cxr-2.0.0-split.csv"))
        }
    except DatasetError:
        split = {}
    files_dir = root / "files" if (root / "files").is_dir() else root
    rows, unlabelled = [], 0
    for r in read_csv(meta):
        subject, study, dicom = r["subject_id"], r["study_id"], r["dicom_id"]
        lab = labels.get((subject, study))
        if lab is None:  # a study the labeller did not label: every finding unknown
            present, uncertain = [], list(CHEXPERT_FINDINGS)
            unlabelled += 1
        else:
            present, uncertain = labeller_findings(lab)
        path = files_dir / f"p{subject[:2]}" / f"p{subject}" / f"s{study}" / f"{dicom}.jpg"
        view = r.get("ViewPosition", "")
        extra = {"study_id": study}
        if split:
            extra["split"] = split.get(dicom, "")
        rows.append(
            FilmRow(
                path=path,
                findings=present,
                uncertain=uncertain,
                patient_id=subject,
                view=_VIEWS.get(view.upper(), view),
                extra=extra,
            )
        )
    notes = ["blank labeller cells (not mentioned) are absent; -1 follows --uncertain"]
    if unlabelled:
        notes.append(f"{unlabelled} films of studies without labeller row: all findings uncertain")
    return Prepared(rows=rows, findings=CHEXPERT_FINDINGS, multilabel=True, notes=notes)


SPEC = register_dataset(
    DatasetSpec(
        name="mimic",
        title="MIMIC-CXR-JPG",
        licence="PhysioNet Credentialed Health Data License 1.5.0",
        citation="Johnson et al., MIMIC-CXR-JPG, arXiv:1901.07042 (2019)",
        labels="14 CheXpert-labeller findings per study with uncertain (-1), multi-label",
        task="multilabel",
        prepare=prepare,
        layout="mimic-cxr-2.0.0-{metadata,chexpert,split}.csv(.gz), "
        "files/pXX/pSUBJECT/sSTUDY/DICOM_ID.jpg",
        access="Credentialed access: https://physionet.org/content/mimic-cxr-jpg/ "
        "(CITI training + data use agreement), then: cxr data prepare mimic --root DIR",
        aliases=("mimic-cxr", "mimic-cxr-jpg"),
        options=("uncertain",),
    )
)
