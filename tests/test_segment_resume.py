"""A killed lung training run continues after its last completed epoch (`--resume`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cxrkit.cli.app import app
from cxrkit.errors import CxrkitError
from cxrkit.segment import train as seg_train
from cxrkit.segment.model import read_lung_card
from cxrkit.segment.resume import state_path
from cxrkit.segment.train import SegTrainConfig, train_lung_model
from segment_helpers import synthetic_annotator

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _cfg(**changes: float) -> SegTrainConfig:
    options = {"size": 64, "epochs": 3, "val_fraction": 0.2, "test_fraction": 0.2, "threads": 1}
    return SegTrainConfig(**{**options, "patience": 10, **changes})


def _history(run: Path) -> list[dict]:
    return json.loads((run / "history.json").read_text())


def test_a_run_killed_in_epoch_3_resumes_there_and_learns_what_an_unbroken_run_learns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = synthetic_annotator(tmp_path / "set", 10, 0)
    train_lung_model(data, tmp_path / "whole", _cfg(), show_progress=False)

    real, calls = seg_train.predict_probs, []

    def killed_in_epoch_3(*args: object, **kwargs: object) -> object:
        calls.append(1)
        if len(calls) == 3:  # the third validation pass: epoch 3 is lost, 1-2 are kept
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    cut = tmp_path / "cut"
    monkeypatch.setattr(seg_train, "predict_probs", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        train_lung_model(data, cut, _cfg(), show_progress=False)
    monkeypatch.setattr(seg_train, "predict_probs", real)
    assert state_path(cut).is_file() and not (cut / "model.safetensors").exists()

    with pytest.raises(CxrkitError, match="resume=True"):  # a fresh start would lose epochs 1-2
        train_lung_model(data, cut, _cfg(), show_progress=False)
    with pytest.raises(CxrkitError, match="lr"):  # other options: refused, state kept
        train_lung_model(data, cut, _cfg(lr=5e-4), show_progress=False, resume=True)
    train_lung_model(data, cut, _cfg(), show_progress=False, resume=True)
    whole, resumed = _history(tmp_path / "whole"), _history(cut)
    assert [h["epoch"] for h in resumed] == [1, 2, 3]
    for a, b in zip(whole, resumed, strict=True):  # same weights, optimizer and random streams
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)
        assert b["val_dice"] == pytest.approx(a["val_dice"], abs=1e-4)
    training = read_lung_card(cut / "model.safetensors").provenance.training
    assert training["resumed_after_epoch"] == 2
    assert not state_path(cut).exists()  # the model file is the result


def test_ctrl_c_tells_how_to_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(seg_train, "train_lung_model", interrupted)
    data = synthetic_annotator(tmp_path / "set", 4, 0)
    args = ["segment", "train", "--data", str(data), "--out", str(tmp_path / "run")]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 130
    assert "--resume" in " ".join(result.output.split())


@pytest.mark.parametrize(
    "bad",
    [
        {"size": 100},
        {"epochs": 0},
        {"batch_size": 0},
        {"lr": 0.0},
        {"val_fraction": 1.5},
        {"encoder": "mobilenet_v9"},
        {"max_minutes": -1.0},
    ],
)
def test_options_that_would_fail_late_are_refused_up_front(bad: dict) -> None:
    with pytest.raises(CxrkitError, match=next(iter(bad))):
        SegTrainConfig(**bad)
