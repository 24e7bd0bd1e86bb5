"""The shared patient split: stable, patient-level, and the same for both lung sets."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from cxrkit.data.patient_split import patient_part


def test_part_is_stable_and_patient_level() -> None:
    assert patient_part("123") == patient_part("123")
    assert {patient_part(str(i)) for i in range(200)} == {"train", "val", "test"}
    counts = Counter(patient_part(str(i)) for i in range(5000))
    assert abs(counts["test"] / 5000 - 0.20) < 0.03
    assert abs(counts["val"] / 5000 - 0.15) < 0.03


def test_both_lung_sets_have_films_in_every_part(shared_data: Path) -> None:
    for name in ("covid_lungmasks", "lungmasks_v7"):
        with (shared_data / name / "labels.csv").open(newline="") as fh:
            parts = Counter(patient_part(row["patient_id"]) for row in csv.DictReader(fh))
        assert min(parts[p] for p in ("train", "val", "test")) >= 5, (name, parts)
