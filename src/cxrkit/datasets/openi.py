"""OpenI / NLMCXR, the Indiana University chest X-ray collection (Demner-Fushman et al., 2016):
3,955 radiology reports with MeSH terms and 7,470 films, open download from the NLM."""

from __future__ import annotations

import tarfile
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path

from cxrkit.datasets.common import FilmRow, Prepared, PrepareOptions, index_files
from cxrkit.datasets.registry import DatasetSpec, RemoteFile, register_dataset
from cxrkit.datasets.vocab import canonical
from cxrkit.errors import DatasetError

OPENI_BASE = "https://openi.nlm.nih.gov/imgs/collections/"
# Xvision's query against the OpenI search API: chest X-ray image types x / xg, paged 100.
SEARCH_API = "https://openi.nlm.nih.gov/api/search"
SEARCH_PAGE = 100
TASKS = ("findings", "nodule-vs-normal")
OPENI_FINDINGS = [
    "Calcification", "Support Devices", "Tuberculosis",
    "Atelectasis", "Cardiomegaly", "Consolidation", "Edema", "Emphysema", "Fibrosis",
    "Fracture", "Granuloma", "Hernia", "Infiltration", "Kyphosis", "Lung Opacity", "Mass",
    "Nodule", "Pleural Effusion", "Pleural Thickening", "Pneumonia", "Pneumothorax",
    "Scoliosis",
]  # fmt: skip


def _reports_from(root: Path) -> Iterator[tuple[str, bytes]]:
    """(file name, XML bytes) of every report: an ecgen-radiology/ folder or the .tgz."""
    folders = [root / "ecgen-radiology"] if (root / "ecgen-radiology").is_dir() else []
    folders = folders or sorted(p for p in root.rglob("ecgen-radiology") if p.is_dir())
    if folders:
        for path in sorted(folders[0].glob("*.xml")):
            yield path.name, path.read_bytes()
        return
    archives = sorted(root.rglob("NLMCXR_reports.tgz"))
    if not archives:
        raise DatasetError(f"{root}: no ecgen-radiology/ folder or NLMCXR_reports.tgz")
    with tarfile.open(archives[0]) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".xml"):
                fh = tar.extractfile(member)
                if fh is not None:
                    yield Path(member.name).name, fh.read()


def parse_report(xml: bytes) -> tuple[str, list[str], list[str]]:
    """(report id, MeSH major terms, parentImage ids) of one OpenI report."""
    tree = ET.fromstring(xml)
    uid = tree.find("uId")
    report = (uid.get("id", "") if uid is not None else "").removeprefix("CXR")
    major = [(m.text or "").strip() for m in tree.iter("major") if (m.text or "").strip()]
    images = [p.get("id", "") for p in tree.iter("parentImage") if p.get("id")]
    return report, major, images


def mesh_findings(terms: list[str]) -> tuple[list[str], list[str]]:
    """(vocabulary findings, raw head terms) of MeSH major terms ("Nodule/lung/left" -> Nodule)."""
    heads = [t.split("/")[0].strip() for t in terms]
    found = [c for c in (canonical(h) for h in heads) if c]
    return list(dict.fromkeys(found)), heads


def nodule_vs_normal(terms: list[str]) -> str | None:
    """Xvision's task: MeSH major exactly 'normal' -> normal; any term with 'nodule' ->
    nodule; everything else (other findings) is left out."""
    if any("nodule" in t.lower() for t in terms):
        return "nodule"
    if terms and all(t.strip().lower() == "normal" for t in terms):
        return "normal"
    return None


def prepare(options: PrepareOptions) -> Prepared:
    """One row per film (parentImage id) of every report; the report is the patient, so a
    patient-grouped split keeps a report's films (frontal and lateral) on one side."""
    task = options.task or "findings"
    if task not in TASKS:
        raise DatasetError(f"openi task must be one of {', '.join(TASKS)}, got {task!r}")
    root = options.root
    files = index_files(root, (".png",))
    image_dir = root / "NLMCXR_png"
    rows, reports = [], 0
    for _name, xml in _reports_from(root):
        report, terms, images = parse_report(xml)
        reports += 1
        findings, heads = mesh_findings(terms)
        # "No Indexing": the report was not coded, so every finding is unknown, not absent.
        unknown = list(OPENI_FINDINGS) if heads == ["No Indexing"] else []
        label = nodule_vs_normal(terms) if task == "nodule-vs-normal" else None
        if task == "nodule-vs-normal" and label is None:
            continue
        for image in images:
            rows.append(
                FilmRow(
                    path=files.get(image + ".png", image_dir / f"{image}.png"),
                    findings=findings,
                    uncertain=unknown,
                    label=label,
                    patient_id=f"CXR{report}",
                    extra={"report": report, "mesh": "|".join(heads)},
                )
            )
    notes = [
        f"{reports} reports read",
        "patient = report (OpenI publishes no other patient id); views are not labelled",
    ]
    if task == "nodule-vs-normal":
        notes.append("Xvision's task, but patient (report) grouped: cxr train splits by patient")
        return Prepared(rows=rows, findings=[], multilabel=False, notes=notes)
    return Prepared(rows=rows, findings=OPENI_FINDINGS, multilabel=True, notes=notes)


def search_url(start: int, base: str = SEARCH_API) -> str:
    """One page of Xvision's OpenI query: image types x and xg, results start..start+99."""
    return f"{base}?it=x,xg&m={start}&n={start + SEARCH_PAGE - 1}"


SPEC = register_dataset(
    DatasetSpec(
        name="openi",
        title="OpenI / NLMCXR (Indiana University)",
        licence="CC BY-NC-ND 4.0 (per report's licenseURL)",
        citation="Demner-Fushman et al., JAMIA 23(2) 2016",
        labels="MeSH major terms -> findings; preset --task nodule-vs-normal (Xvision)",
        task="multilabel",
        prepare=prepare,
        layout="ecgen-radiology/*.xml (or NLMCXR_reports.tgz) and NLMCXR_png/*.png",
        files=(
            RemoteFile("NLMCXR_png.tgz", OPENI_BASE + "NLMCXR_png.tgz"),
            RemoteFile("NLMCXR_reports.tgz", OPENI_BASE + "NLMCXR_reports.tgz"),
        ),
        aliases=("nlmcxr", "iu-xray", "indiana"),
        options=("task",),
    )
)
