"""The source film's header as the outputs copy it: no pixels, values that break VR rules fixed."""

from __future__ import annotations

import copy
import re
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from cxrkit.errors import CxrkitError

_AGE = re.compile(r"^\d{3}[DWMY]$")
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_TYPE2 = (
    "PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
    "ReferringPhysicianName", "StudyID", "AccessionNumber",
)  # fmt: skip


def read_source(path: str | Path) -> Dataset:
    """The header of the DICOM film at `path` (pixels not read); a clear error if not DICOM."""
    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except Exception as exc:  # InvalidDicomError, EOFError, ...
        raise CxrkitError(f"{path}: not a DICOM file ({exc})") from exc
    return source_header(ds)


def source_header(ds: Dataset) -> Dataset:
    """A copy of `ds` without pixel data, with the identifying UIDs checked, the type 2
    patient / study attributes present (empty when the film lacks them) and the Patient's
    Age brought to its VR (``62`` -> ``062Y``; dropped when not a number of years).
    """
    for keyword in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "SOPClassUID"):
        if not str(ds.get(keyword, "") or "").strip():
            raise CxrkitError(f"the source DICOM has no {keyword}; no study to attach results to")
    header = Dataset()
    header.update({e.tag: copy.deepcopy(e) for e in ds if e.keyword not in _PIXEL_KEYWORDS})
    header.file_meta = copy.deepcopy(getattr(ds, "file_meta", Dataset()))
    for keyword in _TYPE2:  # type 2 (present, may be empty): copied into the outputs
        if keyword not in header:
            setattr(header, keyword, "")
    age = str(header.get("PatientAge", "") or "").strip()
    if age and not _AGE.match(age):
        if age.isdigit() and len(age) <= 3:
            header.PatientAge = f"{int(age):03d}Y"
        else:
            del header.PatientAge
    return header


@contextmanager
def quiet_person_names() -> Iterator[None]:
    """Silence highdicom's warning about single-component Patient Names (anonymised sets)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*unlikely to represent the intended person")
        yield
