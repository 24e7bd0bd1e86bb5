"""The CAM heat map over the film as a DICOM Secondary Capture with a burned-in notice.

Why a Secondary Capture and not a Grayscale Softcopy Presentation State: a GSPS can only
annotate the original grey pixels (graphics, text, shutters); it cannot carry a colour heat
map, and viewers may hide its annotations. A Secondary Capture is self-contained, looks
the same in every viewer, and its "not for diagnostic use" notice is part of the pixels,
so it cannot be switched off (Burned In Annotation = YES).
"""

from __future__ import annotations

from typing import Any

import highdicom as hd
import numpy as np
from PIL import Image, ImageDraw, ImageFont
from pydicom.dataset import Dataset

from cxrkit.dicom_out.source import quiet_person_names
from cxrkit.dicom_out.uids import new_uid

NOTICE = "NOT FOR DIAGNOSTIC USE - cxrkit research output"
SC_SERIES_NUMBER = 9902
SC_SERIES_DESCRIPTION = "cxrkit heat map (research use, not for diagnosis)"


def burn_notice(rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """A copy of `rgb` (H, W, 3 uint8) with a black band on top holding `lines` in white."""
    img = Image.fromarray(np.ascontiguousarray(rgb))
    h, w = rgb.shape[:2]
    size = max(10, round(min(h, w) / 32))
    font = ImageFont.load_default(size=size)
    draw = ImageDraw.Draw(img)
    pad = max(2, size // 3)
    band = pad + len(lines) * (size + pad)
    draw.rectangle([0, 0, w - 1, band], fill=(0, 0, 0))
    for i, line in enumerate(lines):
        draw.text((pad, pad + i * (size + pad)), line, fill=(255, 255, 255), font=font)
    return np.asarray(img)


def overlay_lines(row: dict[str, Any], model_name: str, model_version: str) -> list[str]:
    """The burned-in text: the notice, the model and its decision, then one line per
    screening warning of the row (lateral view, inverted, not a chest film, out of
    distribution), so the picture never shows a label without its flags."""
    label = str(row.get("label") or "-").replace("|", ", ")
    warnings = [w.strip() for w in str(row.get("warning") or "").split(";") if w.strip()]
    return [
        NOTICE,
        f"model {model_name} {model_version}: {label}"[:120],
        *(f"WARNING: {w}"[:120] for w in warnings),
    ]


def build_overlay(
    source: Dataset,
    rgb: np.ndarray,
    *,
    uid_root: str | None = None,
    series_uid: str | None = None,
) -> hd.sc.SCImage:
    """A Secondary Capture of `rgb` (H, W, 3 uint8, text burned in) in the source's study."""
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"overlay must be (H, W, 3) uint8, got {rgb.shape} {rgb.dtype}")
    with quiet_person_names():
        sc = hd.sc.SCImage.from_ref_dataset(
            ref_dataset=source,
            pixel_array=rgb,
            photometric_interpretation=hd.PhotometricInterpretationValues.RGB,
            bits_allocated=8,
            coordinate_system=hd.CoordinateSystemNames.PATIENT,
            series_instance_uid=series_uid or new_uid(uid_root),
            series_number=SC_SERIES_NUMBER,
            sop_instance_uid=new_uid(uid_root),
            instance_number=1,
            manufacturer="cxrkit",
            patient_orientation=_orientation(source),
            series_description=SC_SERIES_DESCRIPTION,
        )
    sc.BurnedInAnnotation = "YES"
    sc.StudyID = source.get("StudyID", "")
    sc.Laterality = source.get("Laterality", "")  # type 2C: chest films are not paired
    sc.ImageComments = NOTICE
    sc.DerivationDescription = "CAM heat map of a cxrkit model blended over the source film"
    ref = Dataset()
    ref.ReferencedSOPClassUID = source.SOPClassUID
    ref.ReferencedSOPInstanceUID = source.SOPInstanceUID
    sc.SourceImageSequence = [ref]
    return sc


def _orientation(source: Dataset) -> tuple[str, str]:
    value = source.get("PatientOrientation")
    if value is not None and len(value) == 2 and all(str(v) for v in value):
        return (str(value[0]), str(value[1]))
    return ("L", "F")  # a frontal chest film as displayed: rows to the patient's left, down
