"""`train_polarity` end to end on a handful of real films: a loadable model and its metrics."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest

from cxrkit.polarity import PolarityTrainConfig, load_polarity_model, train_polarity
from cxrkit.polarity.films import discover, split_patients


def test_patient_split_is_disjoint_and_covers_every_source(shared_data: Path) -> None:
    refs = split_patients(
        [r for s in ("covid_lungmasks", "samples") for r in discover(shared_data / s)]
    )
    for source in ("covid_lungmasks", "samples"):
        parts = {
            s: {r.patient for r in refs if r.source == source and r.split == s}
            for s in ("train", "val", "test")
        }
        assert all(parts.values()), parts
        assert not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
    assert split_patients(refs) == refs  # stable: the same films land in the same parts


def _tiny_set(kermany_dir: Path, shared_data: Path, root: Path) -> list[Path]:
    """12 Kermany films, and a lungmasks_v7-named set with one frontal and two lateral
    films of train-part patients (labels.csv with its `view` column)."""
    films = root / "films"
    films.mkdir()
    for src in sorted((kermany_dir / "images").glob("IM-01*.png"))[:12]:
        shutil.copy(src, films / src.name)
    v7 = shared_data / "lungmasks_v7"
    rows = [r for r in csv.DictReader((v7 / "labels.csv").open()) if r["patient_id"] in {"13"}]
    assert {r["view"] for r in rows[:4]} == {"L", "PA"}
    lungs = root / "lungmasks_v7"
    (lungs / "images").mkdir(parents=True)
    with (lungs / "labels.csv").open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "patient_id", "view"])
        for r in rows[:4]:
            shutil.copy(v7 / r["path"], lungs / r["path"])
            w.writerow([r["path"], r["patient_id"], r["view"]])
    return [films, lungs]


def test_tiny_training_run_writes_a_working_model(
    kermany_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    dirs = _tiny_set(kermany_dir, shared_data, tmp_path)
    cfg = PolarityTrainConfig(
        steps=3,
        finetune_steps=2,
        batch_size=32,
        eval_every=2,
        others_per_kind=2,
        test_others_per_kind=2,
        workers=1,
    )
    metrics = train_polarity(dirs, tmp_path / "run", cfg)
    assert set(metrics["polarity"]) == {"films", "all"}
    assert 0.0 <= metrics["guard_detection"]["all"]["rate"] <= 1.0
    assert metrics["n_lateral_films"]["train"] >= 1  # patient 13 is a train patient
    model = load_polarity_model(tmp_path / "run" / "polarity.safetensors")
    p = model.probs(np.zeros((2, 64, 64), np.float32))
    assert p.shape == (2, 4) and np.allclose(p[:, :3].sum(1), 1.0)
    assert 0.5 <= model.lateral_threshold <= 0.9 and model.card.views == ("frontal", "lateral")
    assert (tmp_path / "run" / "split.csv").is_file()
    # the view stage alone, from the saved base: what the leave-one-patient-out folds run
    again = train_polarity(
        dirs, tmp_path / "run2", cfg, base_model=tmp_path / "run" / "base.safetensors"
    )
    assert again["validation"] == {"from": "base.safetensors"}


def test_view_stage_refuses_a_set_without_lateral_films(kermany_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "films"
    data.mkdir()
    for src in sorted((kermany_dir / "images").glob("IM-01*.png"))[:6]:
        shutil.copy(src, data / src.name)
    cfg = PolarityTrainConfig(steps=1, batch_size=16, others_per_kind=1, workers=1)
    with pytest.raises(ValueError, match="lateral films"):
        train_polarity([data], tmp_path / "run", cfg)
