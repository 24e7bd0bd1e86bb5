"""One patient-level split shared by every model trained on the COVID-19 collection's films.

The lung model (`covid_lungmasks` + `lungmasks_v7`, which share patient ids) and the
polarity / screening net must put a patient on the same side, or a film scored as "test"
by one model was seen in training by the other. The part is a stable hash of the patient
id alone (not of the set or the file), so a film masked by two annotators lands on one
side, and adding patients later never moves the old ones.
"""

from __future__ import annotations

import hashlib

TEST_FRACTION = 0.20
VAL_FRACTION = 0.15
SALT = "lungs"


def patient_part(patient_id: str, salt: str = SALT) -> str:
    """'test', 'val' or 'train' for one patient id (20 % / 15 % / 65 % of patients)."""
    digest = hashlib.sha1(f"{salt}/{patient_id}".encode()).hexdigest()
    u = int(digest[:8], 16) / 2**32
    if u < TEST_FRACTION:
        return "test"
    if u < TEST_FRACTION + VAL_FRACTION:
        return "val"
    return "train"
