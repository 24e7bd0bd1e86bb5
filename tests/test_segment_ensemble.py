"""Lung model ensembles: int8 weight storage, mean-probability forward, `cxr segment ensemble`."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from cxrkit.cli.app import app
from cxrkit.segment.model import (
    INT8_SCALE,
    LungEnsemble,
    LungNet,
    load_lung_net,
    pack_weights,
    read_lung_card,
    save_lung_model,
    unpack_weights,
)
from segment_helpers import synthetic_annotator

runner = CliRunner()
SMALL_DECODER = (16, 8, 8, 8, 8)
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _net(seed: int) -> LungNet:
    torch.manual_seed(seed)
    return LungNet(decoder_channels=SMALL_DECODER).eval()


def test_int8_storage_rounds_to_half_a_step_and_keeps_depthwise_in_float16() -> None:
    state = _net(0).state_dict()
    packed = pack_weights(state, "int8")
    unpacked = unpack_weights(packed)
    assert unpacked.keys() == state.keys()
    n_int8 = 0
    for key, value in state.items():
        stored = packed[key]
        if not value.is_floating_point():
            assert torch.equal(stored, value)
        elif stored.dtype == torch.int8:
            n_int8 += 1
            assert value.shape[1] > 1  # never a depthwise kernel
            step = packed[key + INT8_SCALE]
            assert ((unpacked[key] - value).abs() <= step / 2 + 1e-6).all()
        else:
            assert stored.dtype == torch.float16
            assert value.ndim < 2 or value.shape[1] == 1
    assert n_int8 > 10
    with pytest.raises(ValueError, match="int4"):
        pack_weights(state, "int4")


def test_ensemble_averages_probabilities_and_survives_its_file(tmp_path: Path) -> None:
    a, b = _net(0), _net(1)
    ensemble = LungEnsemble([a, b]).eval()
    x = torch.rand(2, 1, 64, 64)
    with torch.inference_mode():
        expected = (torch.sigmoid(a(x)) + torch.sigmoid(b(x))) / 2
        assert torch.allclose(torch.sigmoid(ensemble(x)), expected, atol=1e-5)
        lung = {"task": "segmentation", "class_names": ["lungs"], "preprocessing": {"size": 64}}
        path = save_lung_model(tmp_path / "ens.safetensors", ensemble, lung, ["float16", "int8"])
        loaded, card = load_lung_net(path)
        assert isinstance(loaded, LungEnsemble) and card.architecture == "unet_ensemble"
        assert [m["weights_dtype"] for m in card.network.members] == ["float16", "int8"]
        error = (torch.sigmoid(loaded(x)) - expected).abs()
        assert error.mean() < 0.005 and error.max() < 0.05  # random weights: a loose bound
    with pytest.raises(ValueError, match="two"):
        LungEnsemble([a])
    from safetensors.torch import load_file

    from cxrkit.errors import ModelFileError
    from cxrkit.models.model_file import save_model_file

    lost = card.merged(members=[dict(m) for m in card.network.members[:1]])  # lost a member
    lone = save_model_file(tmp_path / "lone.safetensors", load_file(str(path)), lost)
    with pytest.raises(ModelFileError, match="1 member"):
        load_lung_net(lone)


def test_cli_ensemble_chooses_on_val_and_scores_the_split(tmp_path: Path) -> None:
    a = synthetic_annotator(tmp_path / "annot_a", 10, 0)
    b = synthetic_annotator(tmp_path / "annot_b", 10, 1)
    data = ["--data", a, "--data", b]
    runs = []
    for seed in (0, 1):
        run = tmp_path / f"run{seed}"
        args = ["segment", "train", *data, "--out", run, "--epochs", "1", "--size", "64"]
        args += ["--val", "0.2", "--test", "0.2", "--threads", "1", "--seed", str(seed)]
        args += ["--split-file", runs[0] / "split.csv"] if runs else []
        result = runner.invoke(app, [str(x) for x in args])
        assert result.exit_code == 0, result.output + repr(result.exception)
        runs.append(run)
    out = tmp_path / "ens"
    args = ["segment", "ensemble", "--model", runs[0], "--model", runs[1], *data]
    args += ["--split-file", runs[0] / "split.csv", "--out", out, "--dtype", "float16"]
    args += ["--dtype", "int8"]
    result = runner.invoke(app, [str(x) for x in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    card = read_lung_card(out / "model.safetensors")
    assert card.architecture == "unet_ensemble"
    assert card.screening.views_declared and card.views == ("frontal",)
    assert len(card.provenance.training["members"]) == 2
    assert len(card.provenance.training["inference_choices_on_val"]) == 12
    assert {"val", "test"} <= set(card.metrics)
    assert (out / "test" / "per_film.csv").is_file()
    rows = list(csv.DictReader((out / "split.csv").open()))
    assert rows == list(csv.DictReader((runs[0] / "split.csv").open()))
    again = ["segment", "train", "--data", a, "--out", tmp_path / "again", "--epochs", "1"]
    again += ["--size", "64", "--init", out / "model.safetensors", "--threads", "1"]
    result = runner.invoke(app, [str(x) for x in again])
    assert result.exit_code != 0 and "an ensemble of lung U-Nets" in str(result.exception)
    one = ["segment", "ensemble", "--model", runs[0], *data, "--out", tmp_path / "one"]
    result = runner.invoke(app, [str(x) for x in [*one, "--split-file", out / "split.csv"]])
    assert result.exit_code != 0 and "two or more" in str(result.exception)
    from cxrkit.cli.flags import as_flags

    message = as_flags(str(result.exception))
    assert message.startswith("--models needs two or more files and --dtypes")
    bf16 = [*one, "--model", runs[1], "--dtype", "float16", "--dtype", "bf16"]
    result = runner.invoke(app, [str(x) for x in [*bf16, "--split-file", out / "split.csv"]])
    assert result.exit_code != 0 and "bf16" in str(result.exception)
    assert not (tmp_path / "one" / "model.safetensors").exists()  # refused before any work
