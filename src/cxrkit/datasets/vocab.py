"""One finding vocabulary for every set, and the synonym table that maps each set's names to it.

A prepared set lists, in `dataset.json`, which vocabulary findings it labels; `cxr data
merge` marks the findings a source does not label as uncertain for its films, so that
merging never turns "not labelled" into "absent".
"""

from __future__ import annotations

# Canonical finding names (NIH / CheXpert spelling where they exist).
FINDINGS: tuple[str, ...] = (
    "Atelectasis",
    "Cardiomegaly",
    "Consolidation",
    "Edema",
    "Emphysema",
    "Enlarged Cardiomediastinum",
    "Fibrosis",
    "Fracture",
    "Granuloma",
    "Hernia",
    "Infiltration",
    "Lung Lesion",
    "Lung Opacity",
    "Mass",
    "Nodule",
    "Nodule/Mass",
    "Pleural Effusion",
    "Pleural Other",
    "Pleural Thickening",
    "Pneumonia",
    "Pneumothorax",
    "Support Devices",
    "Aortic Enlargement",
    "Calcification",
    "ILD",
    "Other Lesion",
    "Tuberculosis",
    "Scoliosis",
    "Kyphosis",
)

# Set-specific spellings (compared in lower case) -> canonical finding. Names that mean
# "nothing found" map to "" (an empty finding list). Anything not here and not canonical is
# outside the vocabulary: kept in a raw column, never turned into a negative.
SYNONYMS: dict[str, str] = {
    # nothing found
    "no finding": "",
    "no findings": "",
    "normal": "",
    # NIH ChestX-ray14
    "effusion": "Pleural Effusion",
    "pleural_thickening": "Pleural Thickening",
    # VinDr-CXR
    "aortic enlargement": "Aortic Enlargement",
    "pleural effusion": "Pleural Effusion",
    "pleural thickening": "Pleural Thickening",
    "pulmonary fibrosis": "Fibrosis",
    "other lesion": "Other Lesion",
    "lung opacity": "Lung Opacity",
    "nodule/mass": "Nodule/Mass",
    # PadChest (lower-case English terms)
    "infiltrates": "Infiltration",
    "infiltrate": "Infiltration",  # NIH BBox_List_2017.csv spelling
    "interstitial pattern": "ILD",
    "pulmonary edema": "Edema",
    "hiatal hernia": "Hernia",
    "calcified granuloma": "Granuloma",
    "granuloma": "Granuloma",
    "pneumonia": "Pneumonia",
    "tuberculosis": "Tuberculosis",
    "rib fracture": "Fracture",
    "clavicle fracture": "Fracture",
    "humeral fracture": "Fracture",
    "vertebral fracture": "Fracture",
    "aortic elongation": "Aortic Enlargement",
    "pacemaker": "Support Devices",
    "nsg tube": "Support Devices",
    "endotracheal tube": "Support Devices",
    "central venous catheter": "Support Devices",
    "central venous catheter via jugular vein": "Support Devices",
    "central venous catheter via subclavian vein": "Support Devices",
    "chest drain tube": "Support Devices",
    # OpenI MeSH major terms
    "pulmonary atelectasis": "Atelectasis",
    "lung, hyperlucent": "Emphysema",
    "pulmonary emphysema": "Emphysema",
    "calcinosis": "Calcification",
    "granulomatous disease": "Granuloma",
    "fractures, bone": "Fracture",
    "hernia, hiatal": "Hernia",
    "catheters, indwelling": "Support Devices",
    "implanted medical device": "Support Devices",
    "medical device": "Support Devices",
    "tube, inserted": "Support Devices",
    "opacity": "Lung Opacity",
}

_CANONICAL = {name.lower(): name for name in FINDINGS}


def canonical(name: str) -> str | None:
    """The vocabulary name for `name`; "" for a "nothing found" name; None if unknown."""
    key = " ".join(name.strip().lower().split())
    if key in _CANONICAL:
        return _CANONICAL[key]
    if key in SYNONYMS:
        return SYNONYMS[key]
    return None
