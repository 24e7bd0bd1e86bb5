"""CheXpert (Irvin et al., AAAI 2019): 224,316 films of 65,240 patients, 14 labeller findings
with an uncertain state (-1). Behind a registration (Stanford AIMI)."""

from __future__ import annotations

from pathlib import PurePosixPath

from cxrkit.datasets.common import FilmRow, Prepared, PrepareOptions, need_file, read_csv
from cxrkit.datasets.registry import DatasetSpec, register_dataset
from cxrkit.datasets.vocab import canonical
from cxrkit.errors import DatasetError

# The labeller's 14 columns; "No Finding" is not a finding (an empty list says it).
CHEXPERT_COLUMNS = (
    "No Finding", "Enlarged Cardiomediastinum", "Cardiomegaly", "Lung Opacity", "Lung Lesion",
    "Edema", "Consolidation", "Pneumonia", "Atelectasis", "Pneumothorax", "Pleural Effusion",
    "Pleural Other", "Fracture", "Support Devices",
)  # fmt: skip
CHEXPERT_FINDINGS = [c for c in CHEXPERT_COLUMNS if c != "No Finding"]


def labeller_findings(row: dict[str, str]) -> tuple[list[str], list[str]]:
    """(present, uncertain) from the CheXpert labeller columns of one row.

    1 = present, -1 = uncertain, 0 = absent, blank = not mentioned in the report, which the
    CheXpert and MIMIC-CXR authors treat as absent (so do we; stated in docs/DATASETS.md).
    "No Finding" = 1 only says no other finding is present; it adds no finding itself.
    """
    present, uncertain = [], []
    for col in CHEXPERT_FINDINGS:
        value = row.get(col, "")
        if not value:
            continue
        v = float(value)
        name = canonical(col) or col
        if v == 1:
            present.append(name)
        elif v == -1:
            uncertain.append(name)
    return present, uncertain


def view_of(frontal_lateral: str, ap_pa: str) -> str:
    """PA / AP / LL-style view from CheXpert's Frontal/Lateral and AP/PA columns."""
    if frontal_lateral.lower() == "lateral":
        return "L"
    return ap_pa.upper()


def prepare(options: PrepareOptions) -> Prepared:
    """Rows of train.csv (and valid.csv when present); paths are relative to the folder
    that holds `CheXpert-v1.0(-small)/`, which may be --root or its parent."""
    root = options.root
    rows = []
    for name in ("train.csv", "valid.csv"):
        try:
            table = need_file(root, name, "chexpert_" + name)
        except DatasetError:
            if name == "valid.csv":
                continue
            raise
        for r in read_csv(table):
            rel = PurePosixPath(r["Path"])
            # Path starts with "CheXpert-v1.0-small/..."; --root may be that folder itself.
            first = rel.parts[0]
            base = root.parent if root.name == first and not (root / first).exists() else root
            path = base / rel
            patient = next((p for p in rel.parts if p.startswith("patient")), rel.parts[0])
            study = next((p for p in rel.parts if p.startswith("study")), "")
            present, uncertain = labeller_findings(r)
            rows.append(
                FilmRow(
                    path=path,
                    findings=present,
                    uncertain=uncertain,
                    patient_id=patient,
                    view=view_of(r.get("Frontal/Lateral", ""), r.get("AP/PA", "")),
                    sex=r.get("Sex", ""),
                    age=r.get("Age", ""),
                    extra={"study_id": f"{patient}/{study}", "split": name[:-4]},
                )
            )
    notes = ["blank labeller cells (not mentioned) are absent; -1 follows --uncertain"]
    return Prepared(rows=rows, findings=CHEXPERT_FINDINGS, multilabel=True, notes=notes)


SPEC = register_dataset(
    DatasetSpec(
        name="chexpert",
        title="CheXpert",
        licence="Stanford University School of Medicine CheXpert Dataset Research Use Agreement",
        citation="Irvin et al., CheXpert, AAAI 2019",
        labels="14 labeller findings with uncertain (-1), multi-label",
        task="multilabel",
        prepare=prepare,
        layout="CheXpert-v1.0(-small)/train.csv, valid.csv and train/patientNNNNN/studyN/*.jpg",
        access="Register and download at https://stanfordaimi.azurewebsites.net/datasets "
        "(CheXpert-v1.0 or -small), unpack, then: cxr data prepare chexpert --root DIR",
        options=("uncertain",),
    )
)
