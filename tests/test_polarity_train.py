"""`train_polarity` end to end on a handful of real films: a loadable model and its metrics."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

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


def test_tiny_training_run_writes_a_working_model(kermany_dir: Path, tmp_path: Path) -> None:
    data = tmp_path / "films"
    data.mkdir()
    for src in sorted((kermany_dir / "images").glob("IM-01*.png"))[:12]:
        shutil.copy(src, data / src.name)
    cfg = PolarityTrainConfig(
        steps=3,
        batch_size=32,
        eval_every=2,
        others_per_kind=2,
        test_others_per_kind=2,
        workers=1,
    )
    metrics = train_polarity([data], tmp_path / "run", cfg)
    assert set(metrics["polarity"]) == {"films", "all"}
    assert 0.0 <= metrics["guard_detection"]["all"]["rate"] <= 1.0
    model = load_polarity_model(tmp_path / "run" / "polarity.safetensors")
    assert model.probs(np.zeros((2, 64, 64), np.float32)).shape == (2, 3)
    assert (tmp_path / "run" / "split.csv").is_file()
