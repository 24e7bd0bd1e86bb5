"""The third label state: an `uncertain` column is kept apart and masked out of the loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cxrkit.data.table import load_table
from cxrkit.train.loop import validation_score
from cxrkit.train.optim import MaskedBCEWithLogitsLoss, build_loss


def _write(tmp_path, rows: list[str]) -> None:
    for i in range(len(rows)):
        (tmp_path / f"{i}.png").write_bytes(b"x")
    lines = ["path,label,uncertain"] + [f"{i}.png,{r}" for i, r in enumerate(rows)]
    (tmp_path / "labels.csv").write_text("\n".join(lines) + "\n")


def test_uncertain_column_is_a_third_state(tmp_path):
    _write(tmp_path, ["Edema,Cardiomegaly", ",Edema|Nodule", "Nodule,"])
    table = load_table(tmp_path)
    assert table.task == "multilabel"  # single findings per row, still multi-label
    assert table.class_names == ["Cardiomegaly", "Edema", "Nodule"]
    assert table.records[1].uncertain == ("Edema", "Nodule")
    plain = table.targets()
    masked = table.targets(mask_uncertain=True)
    assert plain[0].tolist() == [0.0, 1.0, 0.0]  # default: uncertain is not "present"
    assert np.isnan(masked[0, 0]) and masked[0, 1] == 1.0 and masked[0, 2] == 0.0
    assert np.isnan(masked[1, 1]) and np.isnan(masked[1, 2]) and masked[1, 0] == 0.0
    assert not np.isnan(masked[2]).any()


def test_a_finding_both_present_and_uncertain_stays_present(tmp_path):
    _write(tmp_path, ["Edema,Edema", "Nodule,"])
    table = load_table(tmp_path)
    assert table.records[0].uncertain == ()
    assert table.targets(mask_uncertain=True)[0].tolist() == [1.0, 0.0]


def test_masked_bce_equals_bce_without_nan_and_skips_nan():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, requires_grad=True)
    y = torch.tensor([[1.0, 0, 1], [0, 0, 1], [1, 1, 0], [0, 1, 0]])
    pw = torch.tensor([1.0, 2.0, 0.5])
    assert torch.allclose(
        MaskedBCEWithLogitsLoss(pos_weight=pw)(logits, y),
        nn.BCEWithLogitsLoss(pos_weight=pw)(logits, y),
    )
    y_nan = y.clone()
    y_nan[0, 0] = float("nan")
    y_nan[3, 2] = float("nan")
    loss = build_loss("multilabel", None)(logits, y_nan)
    known = ~torch.isnan(y_nan)
    expected = nn.functional.binary_cross_entropy_with_logits(logits[known], y_nan[known])
    assert torch.isfinite(loss) and torch.allclose(loss, expected)
    loss.backward()
    assert logits.grad[0, 0] == 0 and logits.grad[3, 2] == 0 and logits.grad[0, 1] != 0


def test_validation_score_leaves_uncertain_entries_out():
    y = np.array([[1, 0], [0, np.nan], [1, 1], [0, 0]], dtype=np.float32)
    p = np.array([[0.9, 0.2], [0.1, 0.99], [0.8, 0.7], [0.2, 0.1]], dtype=np.float32)
    assert validation_score(y, p, "multilabel") == pytest.approx(1.0)


def test_features_head_trains_with_uncertain_findings_masked(tmp_path, nih_dir, monkeypatch):
    """Features mode: the head's training targets carry NaN where a finding is uncertain."""
    import csv
    import importlib

    import cxrkit as cx

    rows = list(csv.DictReader((nih_dir / "labels.csv").open(newline="")))[:48]
    with (tmp_path / "labels.csv").open("w", newline="") as fh:
        out = csv.writer(fh)
        out.writerow(["path", "label", "uncertain", "patient_id"])
        for i, row in enumerate(rows):
            findings = row["findings"] or "Effusion" * (i % 2)
            out.writerow(
                [
                    str(nih_dir / row["path"]),
                    findings,
                    "Infiltration" * (i % 3 == 0),
                    row["patient_id"],
                ]
            )
    runner = importlib.import_module("cxrkit.train.runner")
    seen = []
    real = runner.FeatureBatches

    def spy(x, y, *args, **kw):
        seen.append(np.asarray(y))
        return real(x, y, *args, **kw)

    monkeypatch.setattr(runner, "FeatureBatches", spy)
    cfg = cx.TrainConfig(
        backbone="small_cnn",
        image_size=32,
        epochs=1,
        batch_size=8,
        num_workers=0,
        n_bootstrap=0,
        cache_dir=str(tmp_path / "cache"),
        random_init=True,
    )
    run = cx.train(tmp_path, tmp_path / "run", cfg, show_progress=False)
    train_y = seen[0]
    infiltration = run.metrics["class_names"].index("Infiltration")
    assert np.isnan(train_y[:, infiltration]).any()  # uncertain: left out of the loss
    assert not np.isnan(np.delete(train_y, infiltration, axis=1)).any()
    assert np.isfinite(run.metrics["per_class"]["Effusion"]["auc"] or 0.0)
