"""The epoch loop: loss falls when overfitting, checkpoints resume consistently, BN stays frozen."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from cxrkit.classifier.dataset import CXRDataset, collate_skip_bad
from cxrkit.data.table import load_table
from cxrkit.errors import CxrkitError
from cxrkit.fit.checkpoint import load_checkpoint, save_checkpoint
from cxrkit.models import create_model
from cxrkit.train.config import load_config
from cxrkit.train.features import FeatureBatches
from cxrkit.train.finetune import freeze_all_but_last
from cxrkit.train.loop import FitResult, fit
from cxrkit.train.optim import build_loss

CPU = torch.device("cpu")


def _toy_features(n: int = 64, d: int = 8, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, d)).astype(np.float32)
    x[:, 0] += 2.0 * y
    return x, y.astype(np.int64)


def _head_fit(
    tmp: Path, epochs: int, resume: bool = False, seed: int = 0, **cfg_kw: object
) -> tuple[nn.Module, FitResult]:
    x, y = _toy_features()
    torch.manual_seed(seed)
    head = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    cfg = load_config(None, {"epochs": epochs, "batch_size": 16, "lr": 0.01, **cfg_kw})
    result = fit(
        head,
        FeatureBatches(x[:48], y[:48], 16, seed=0),
        lambda: FeatureBatches(x[48:], y[48:], 64, seed=0, shuffle=False)(),
        build_loss("binary", None),
        "binary",
        cfg,
        tmp / "checkpoints",
        CPU,
        resume=resume,
        show_progress=False,
    )
    return head, result


@pytest.mark.slow
def test_loss_falls_when_overfitting_16_films(nih_dir: Path, tmp_path: Path) -> None:
    """The small CNN, trained end to end on 16 real films, drives its training loss down."""
    table = load_table(nih_dir)
    y = table.targets()
    idx = np.concatenate([np.flatnonzero(y == 0)[:8], np.flatnonzero(y == 1)[:8]])
    ds = CXRDataset(table, idx, size=32, cache_dir=tmp_path / "cache")
    torch.manual_seed(0)
    model = create_model("small_cnn", 2, dropout=0.0, drop_rate=0.0)
    cfg = load_config(
        None, {"epochs": 8, "lr": 3e-5, "early_stopping_patience": 8}, {"augment": None}
    )

    def batches(epoch: int) -> DataLoader:
        g = torch.Generator().manual_seed(epoch)
        return DataLoader(ds, batch_size=16, shuffle=True, generator=g, collate_fn=collate_skip_bad)

    result = fit(
        model,
        batches,
        lambda: batches(0),
        build_loss("binary", None),
        "binary",
        cfg,
        tmp_path / "ck",
        CPU,
        show_progress=False,
    )
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 8
    assert losses[-1] < 0.5 * losses[0], losses
    assert min(losses) < 0.3, losses


def test_resume_after_a_kill_replays_an_unbroken_run(tmp_path: Path) -> None:
    """Killed once epoch 2 of 4 is saved, then resumed: the same losses as an unbroken run."""
    _, full = _head_fit(tmp_path / "full", epochs=4, early_stopping_patience=100)
    _stop_after(tmp_path / "killed", epochs=4, stop_after=2)
    assert load_checkpoint(tmp_path / "killed" / "checkpoints" / "last.pt")["epoch"] == 2
    _, resumed = _head_fit(tmp_path / "killed", epochs=4, resume=True, early_stopping_patience=100)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for a, b in zip(resumed.history, full.history, strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-6)
        assert a["val_auc"] == pytest.approx(b["val_auc"])
        assert a["lr"] == pytest.approx(b["lr"])
    assert resumed.best_epoch == full.best_epoch


def _stop_after(tmp: Path, epochs: int, stop_after: int) -> nn.Module:
    """Run `epochs` planned epochs but stop (like a kill) once epoch `stop_after` is saved."""
    x, y = _toy_features()
    torch.manual_seed(0)
    head = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(0.2), nn.Linear(16, 2))
    cfg = load_config(
        None, {"epochs": epochs, "batch_size": 16, "lr": 0.01, "early_stopping_patience": 100}
    )
    feats = FeatureBatches(x[:48], y[:48], 16, seed=0)

    class Killed(Exception):
        pass

    def batches(epoch: int):
        if epoch > stop_after:
            raise Killed
        return feats(epoch)

    with pytest.raises(Killed):
        fit(
            head,
            batches,
            lambda: FeatureBatches(x[48:], y[48:], 64, seed=0, shuffle=False)(),
            build_loss("binary", None),
            "binary",
            cfg,
            tmp / "checkpoints",
            CPU,
            show_progress=False,
        )
    return head


def test_kill_between_last_and_best_writes_resumes_with_the_right_best(tmp_path: Path) -> None:
    """last.pt says epoch 2 was the best, best.pt still holds epoch 1: use last.pt's weights."""
    _stop_after(tmp_path, epochs=4, stop_after=2)
    ck = tmp_path / "checkpoints"
    state = load_checkpoint(ck / "last.pt")
    state["best_epoch"], state["best_score"] = 2, 1.0
    save_checkpoint(ck / "last.pt", state)
    save_checkpoint(ck / "best.pt", {"module": state["module"], "epoch": 1, "score": 0.5})
    _, resumed = _head_fit(tmp_path, epochs=4, resume=True, early_stopping_patience=100)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]


def test_mismatched_best_checkpoint_is_a_clear_error(tmp_path: Path) -> None:
    _stop_after(tmp_path, epochs=4, stop_after=2)
    ck = tmp_path / "checkpoints"
    state = load_checkpoint(ck / "last.pt")
    state["best_epoch"] = 1
    save_checkpoint(ck / "last.pt", state)
    save_checkpoint(ck / "best.pt", {"module": state["module"], "epoch": 2, "score": 0.5})
    with pytest.raises(CxrkitError, match="do not belong together"):
        _head_fit(tmp_path, epochs=4, resume=True)


def test_a_fresh_run_removes_old_checkpoints(tmp_path: Path) -> None:
    ck = tmp_path / "checkpoints"
    _stop_after(tmp_path, epochs=4, stop_after=2)
    assert (ck / "last.pt").is_file()
    _stop_after(tmp_path, epochs=4, stop_after=0)  # a fresh run, killed before epoch 1 ends
    assert not (ck / "last.pt").exists() and not (ck / "best.pt").exists()


def test_checkpoint_from_another_model_is_a_clear_error(tmp_path: Path) -> None:
    _stop_after(tmp_path, epochs=4, stop_after=1)
    x, y = _toy_features()
    other = nn.Linear(8, 2)
    cfg = load_config(None, {"epochs": 2})
    with pytest.raises(CxrkitError, match="does not fit this model"):
        fit(
            other,
            FeatureBatches(x, y, 16, seed=0),
            lambda: FeatureBatches(x, y, 64, seed=0, shuffle=False)(),
            build_loss("binary", None),
            "binary",
            cfg,
            tmp_path / "checkpoints",
            CPU,
            resume=True,
            show_progress=False,
        )


def test_frozen_blocks_keep_their_batchnorm_statistics(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("small_cnn", 2)
    freeze_all_but_last(model, 2)  # blocks: conv 0, 1, 2 and fc; train conv 2 and fc
    frozen_bn = model.backbone.blocks[0].bn
    trained_bn = model.backbone.blocks[2].bn
    before = (frozen_bn.running_mean.clone(), trained_bn.running_mean.clone())
    x = torch.rand(16, 1, 32, 32)
    y = torch.randint(0, 2, (16,))
    cfg = load_config(None, {"epochs": 1})
    fit(
        model,
        lambda epoch: [{"image": x, "target": y}],
        lambda: [{"image": x, "target": y}],
        build_loss("binary", None),
        "binary",
        cfg,
        tmp_path / "ck",
        CPU,
        show_progress=False,
    )
    assert torch.equal(frozen_bn.running_mean, before[0])
    assert not torch.equal(trained_bn.running_mean, before[1])
    assert not any(p.requires_grad for p in model.backbone.blocks[0].parameters())
