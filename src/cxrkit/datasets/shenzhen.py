"""Shenzhen chest X-ray set (Jaeger et al., 2014): 662 films, 336 TB, label in the file name."""

from __future__ import annotations

import os
import re
from pathlib import Path

from cxrkit.datasets.common import FilmRow, Prepared, PrepareOptions, index_files
from cxrkit.datasets.registry import DatasetSpec, RemoteFile, register_dataset
from cxrkit.errors import DatasetError

LHNCBC = "https://data.lhncbc.nlm.nih.gov/public/Tuberculosis-Chest-X-ray-Datasets/"
_NAME = re.compile(r"^(?P<stem>(?P<prefix>[A-Z]+)_(?P<id>\d+)_(?P<tb>[01]))\.png$", re.IGNORECASE)
_SEX = re.compile(r"\b(male|female|m|f)\b", re.IGNORECASE)
_AGE = re.compile(r"(\d{1,3})\s*(?:y|yrs|years?)?", re.IGNORECASE)


def read_clinical(path: Path) -> tuple[str, str, str]:
    """(sex M/F, age in years, reading) from a ClinicalReadings .txt (Shenzhen or
    Montgomery style); empty strings for what is not there."""
    if not path.is_file():
        return "", "", ""
    text = path.read_text(errors="replace")
    sex, age = "", ""
    m = re.search(r"Sex:\s*(\w+)", text) or _SEX.search(text)
    if m:
        sex = m.group(1)[0].upper()
    m = re.search(r"Age:\s*0*(\d+)", text) or _AGE.search(text)
    if m:
        age = str(int(m.group(1)))
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    reading = " ".join(ln for ln in lines if "sex" not in ln.lower() and "age" not in ln.lower())
    return sex, age, reading


def tb_films(options: PrepareOptions, prefix: str) -> list[tuple[Path, str, str]]:
    """(path, stem, label normal|tb) of the PREFIX_NNNN_0/1.png films under --root."""
    found = []
    for dirpath, dirnames, filenames in os.walk(options.root):
        dirnames[:] = sorted(d for d in dirnames if "mask" not in d.lower() and d[:1] != ".")
        for name in sorted(filenames):
            m = _NAME.match(name)
            if m and m.group("prefix").upper() == prefix:
                label = "tb" if m.group("tb") == "1" else "normal"
                found.append((Path(dirpath) / name, m.group("stem"), label))
    if not found:
        raise DatasetError(f"{options.root}: no {prefix}_NNNN_0.png / _1.png films found")
    return found


def prepare(options: PrepareOptions) -> Prepared:
    """normal / tb from the file name; sex, age and the reading from ClinicalReadings/."""
    rows = []
    texts = index_files(options.root, (".txt",))
    for path, stem, label in tb_films(options, "CHNCXR"):
        clinical = texts.get(stem + ".txt")
        sex, age, reading = read_clinical(clinical) if clinical else ("", "", "")
        rows.append(
            FilmRow(
                path=path,
                label=label,
                patient_id=stem,
                view="PA",
                sex=sex,
                age=age,
                extra={"reading": reading},
            )
        )
    notes = ["each film is one patient; all films PA (as published)"]
    return Prepared(rows=rows, findings=[], multilabel=False, notes=notes)


SPEC = register_dataset(
    DatasetSpec(
        name="shenzhen",
        title="Shenzhen chest X-ray set",
        licence="Public (NLM); cite the papers; do not redistribute (owner's request)",
        citation="Jaeger et al., Quant Imaging Med Surg 4(6) 2014",
        labels="normal / tb (file name), clinical reading",
        task="binary",
        prepare=prepare,
        layout="CXR_png/CHNCXR_NNNN_0|1.png, ClinicalReadings/CHNCXR_NNNN_0|1.txt",
        files=(RemoteFile("ChinaSet_AllFiles.zip", LHNCBC + "ChinaSet_AllFiles.zip"),),
        aliases=("chinaset",),
    )
)
