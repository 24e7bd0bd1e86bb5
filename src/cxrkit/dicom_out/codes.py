"""Coded concepts for the structured report: one small, cited table, private codes where none fits.

Where each code comes from (looked up for this module, issue 15):

- DICOM PS3.16 (the code tables shipped in pydicom's ``pydicom.sr.codedict``, which is
  generated from PS3.16): SCT 60046008 Pleural effusion, SCT 36118008 Pneumothorax,
  SCT 19242006 Pulmonary edema (CID 3700), SCT 287272002 Cardiomegaly (CID 12248/12249),
  SCT 4147007 Mass, SCT 27925004 Nodule and DCM 112121 Infiltrate (CID 6102),
  SCT 17621005 Normal, SCT 52101004 Present, SCT 272519000 Absent, SCT 373066001 Yes,
  SCT 373067005 No, SCT 272479007 postero-anterior, SCT 399348003 antero-posterior,
  SCT 49370004 Lateral, DCM 111031 Image View, DCM 111101 Image Quality (CID 6101),
  DCM 122157 Probability, DCM 121071 Finding, UCUM "1" (no units).
- SNOMED CT browser (tx.fhir.org / SNOMED International releases), and HL7 FHIR
  implementation guides that use the same codes:
  SCT 233604007 Pneumonia (disorder) (HL7 SANER IG examples; SNOMED CT RF1 guide figure 4),
  SCT 46621007 Atelectasis (FHIR ConceptMaps, OMOP-based CT labelling of Huo et al. 2024),
  SCT 95436008 Lung consolidation (OMOP concept table), SCT 87433001 Pulmonary emphysema
  (FHIR radiology example), SCT 51615001 Pulmonary fibrosis (FHIR CodeSystem display),
  SCT 786838002 Nodule of lung / Pulmonary nodule (SNOMED CT browser, 2023-07 release),
  SCT 399208008 Plain chest X-ray (procedure) (FHIR ServiceRequest / Procedure examples).
- No code confirmed here: NIH "Pleural_Thickening", "Hernia" and any class a user trains
  (e.g. "abnormal") get a code of the private scheme ``99CXRKIT`` (the ``99`` prefix is
  the DICOM convention for private coding schemes), as do the screening concepts
  (polarity, out-of-distribution score, decision threshold) that no standard names.
"""

from __future__ import annotations

import re

from pydicom.sr.coding import Code

#: Private coding scheme designator of cxrkit (PS3.3 8.1: private schemes start with "99").
PRIVATE_SCHEME = "99CXRKIT"

SCT, DCM = "SCT", "DCM"

#: Class name (lower-case, spaces/underscores/hyphens folded to one space) -> code.
FINDINGS: dict[str, Code] = {
    "pneumonia": Code("233604007", SCT, "Pneumonia"),
    "atelectasis": Code("46621007", SCT, "Atelectasis"),
    "cardiomegaly": Code("287272002", SCT, "Cardiomegaly"),
    "effusion": Code("60046008", SCT, "Pleural effusion"),
    "pleural effusion": Code("60046008", SCT, "Pleural effusion"),
    "infiltration": Code("112121", DCM, "Infiltrate"),
    "infiltrate": Code("112121", DCM, "Infiltrate"),
    "mass": Code("4147007", SCT, "Mass"),
    "nodule": Code("786838002", SCT, "Pulmonary nodule"),
    "pneumothorax": Code("36118008", SCT, "Pneumothorax"),
    "consolidation": Code("95436008", SCT, "Lung consolidation"),
    "edema": Code("19242006", SCT, "Pulmonary edema"),
    "oedema": Code("19242006", SCT, "Pulmonary edema"),
    "emphysema": Code("87433001", SCT, "Pulmonary emphysema"),
    "fibrosis": Code("51615001", SCT, "Pulmonary fibrosis"),
    "normal": Code("17621005", SCT, "Normal"),
    "no finding": Code("17621005", SCT, "Normal"),
}

PRESENT = Code("52101004", SCT, "Present")
ABSENT = Code("272519000", SCT, "Absent")
YES = Code("373066001", SCT, "Yes")
NO = Code("373067005", SCT, "No")
PROBABILITY = Code("122157", DCM, "Probability")
NO_UNITS = Code("1", "UCUM", "no units")
IMAGE_VIEW = Code("111031", DCM, "Image View")
IMAGE_QUALITY = Code("111101", DCM, "Image Quality")
CHEST_XRAY = Code("399208008", SCT, "Plain chest X-ray")

VIEWS: dict[str, Code] = {
    "pa": Code("272479007", SCT, "postero-anterior"),
    "ap": Code("399348003", SCT, "antero-posterior"),
    "lateral": Code("49370004", SCT, "Lateral"),
    "l": Code("49370004", SCT, "Lateral"),
    "ll": Code("49370004", SCT, "Lateral"),
    "rl": Code("49370004", SCT, "Lateral"),
}


def private(value: str, meaning: str) -> Code:
    """A concept of cxrkit's private coding scheme (code values are at most 16 characters)."""
    return Code(value[:16], PRIVATE_SCHEME, meaning[:64])


THRESHOLD = private("THRESHOLD", "Decision threshold")
POLARITY = private("POLARITY", "Film polarity")
OUT_OF_DISTRIBUTION = private("OOD", "Out of the model's training distribution")
OOD_SCORE = private("OODSCORE", "Out-of-distribution score")
NOT_CXR = private("NOTCXR", "Not a chest radiograph")
FRONTAL = private("FRONTAL", "Frontal (PA or AP)")


def _fold(name: str) -> str:
    return re.sub(r"[\s_\-]+", " ", name.strip().lower())


def finding_code(class_name: str) -> Code:
    """The code of a model class: SNOMED CT / DCM from the table, else a private code."""
    known = FINDINGS.get(_fold(class_name))
    if known is not None:
        return known
    slug = re.sub(r"[^A-Z0-9]", "", _fold(class_name).upper()) or "CLASS"
    return private(slug, class_name)


def is_private(code: Code) -> bool:
    """True for a code of cxrkit's private scheme."""
    return code.scheme_designator == PRIVATE_SCHEME


def view_code(view: str) -> Code:
    """The code of a view label (PA, AP, lateral, frontal); private when none fits."""
    folded = _fold(view)
    if folded in VIEWS:
        return VIEWS[folded]
    if folded == "frontal":
        return FRONTAL
    return private(re.sub(r"[^A-Z0-9]", "", folded.upper()) or "VIEW", view)


def polarity_code(polarity: str) -> Code:
    """A private code for a polarity verdict ('positive', 'inverted', ...)."""
    return private(re.sub(r"[^A-Z0-9]", "", polarity.upper()) or "UNKNOWN", polarity)
