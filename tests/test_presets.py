"""The seed recipes under configs/: valid configs, honest about weights, runnable end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from cxrkit.cli.app import app
from cxrkit.models import get_spec
from cxrkit.models.model_file import read_card
from cxrkit.train import load_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
PRESETS = sorted(p.name for p in CONFIGS.glob("*.yaml") if p.name != "demo.yaml")


def test_the_five_presets_are_there() -> None:
    assert PRESETS == [
        "inception_v3_binary.yaml",
        "mobilenet_v2_035_subtype.yaml",
        "polarity_small_cnn.yaml",
        "xception_nih_multilabel.yaml",
        "xvision_vgg16.yaml",
    ]


@pytest.mark.parametrize("name", PRESETS)
def test_preset_is_a_valid_config_and_honest_about_weights(name: str) -> None:
    text = (CONFIGS / name).read_text()
    cfg = load_config(CONFIGS / name)
    assert set(yaml.safe_load(text)) <= set(cfg.to_dict())
    spec = get_spec(cfg.backbone)
    if spec.requires_weights:  # no ImageNet file for it here: say so, do not pretend
        assert cfg.random_init and cfg.weights is None
        assert "--weights PATH" in text
        if spec.hub_name is not None:
            assert "--weights hub" in text
        with_file = load_config(CONFIGS / name, {"weights": "/some/imagenet.pth"})
        assert with_file.weights == "/some/imagenet.pth" and not with_file.random_init
    assert "cxr train --config configs/" + name in " ".join(text.replace("\\\n#", "").split())
    assert name in (CONFIGS / "README.md").read_text()


def test_xvision_keeps_its_recipe() -> None:
    cfg = load_config(CONFIGS / "xvision_vgg16.yaml")
    assert (cfg.backbone, cfg.mode, cfg.optimizer) == ("vgg16", "features", "sgd")
    assert (cfg.lr, cfg.batch_size, cfg.epochs) == (0.01, 20, 20)
    assert cfg.head_hidden is not None  # hidden layer + output layer: a 2-layer head
    assert cfg.scheduler == "none" and cfg.momentum == 0.0


def test_recipes_match_their_descriptions() -> None:
    polarity = load_config(CONFIGS / "polarity_small_cnn.yaml")
    assert (polarity.backbone, polarity.image_size) == ("small_cnn", 128)
    inception = load_config(CONFIGS / "inception_v3_binary.yaml")
    assert (inception.backbone, inception.task) == ("inception_v3", "binary")
    mobile = load_config(CONFIGS / "mobilenet_v2_035_subtype.yaml")
    assert (mobile.backbone, mobile.label_column, mobile.task) == (
        "mobilenet_v2_035",
        "subtype",
        "multiclass",
    )
    assert mobile.head_hidden is None  # global average pooling -> one softmax layer
    xception = load_config(CONFIGS / "xception_nih_multilabel.yaml")
    assert (xception.backbone, xception.label_column, xception.task) == (
        "xception",
        "findings",
        "multilabel",
    )
    assert xception.augment is not None
    assert xception.augment["hflip"] and xception.augment["rotate_deg"] > 0


# Shrunken runs: few films, one epoch, small films. Data paths are relative to ../shared/data.
SHRUNK: dict[str, tuple[str, list[str]]] = {
    "xvision_vgg16.yaml": ("kermany_pneumonia", ["--max-images", "30", "--image-size", "32"]),
    "inception_v3_binary.yaml": (
        "kermany_pneumonia",
        ["--max-images", "30", "--image-size", "75", "--set", "feature_augment_copies=0"],
    ),
    "mobilenet_v2_035_subtype.yaml": (
        "kermany_pneumonia",
        ["--max-images", "36", "--image-size", "32", "--batch-size", "16"],
    ),
    "xception_nih_multilabel.yaml": (
        "nih1000",
        ["--max-images", "20", "--image-size", "71", "--batch-size", "16"],
    ),
    "polarity_small_cnn.yaml": ("polarity", ["--image-size", "32", "--batch-size", "8"]),
}
EXPECTED = {
    "xvision_vgg16.yaml": ("binary", ["normal", "pneumonia"]),
    "inception_v3_binary.yaml": ("binary", ["normal", "pneumonia"]),
    "mobilenet_v2_035_subtype.yaml": ("multiclass", ["bacterial", "none", "viral"]),
    "xception_nih_multilabel.yaml": ("multilabel", None),
    "polarity_small_cnn.yaml": ("binary", ["negative", "positive"]),
}


def _polarity_data(shared_data: Path, out: Path) -> Path:
    """The polarity preset's data, made as its header says, at CI size."""
    result = CliRunner().invoke(
        app,
        [
            "data",
            "polarity-set",
            str(shared_data / "nih1000"),
            str(shared_data / "kermany_pneumonia"),
            "--out",
            str(out),
            "--size",
            "32",
            "--per-source",
            "15",
        ],
    )
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore:class .* validation labels hold one outcome only")
@pytest.mark.parametrize("name", PRESETS)
def test_preset_runs_end_to_end_shrunk(name: str, shared_data: Path, tmp_path: Path) -> None:
    dataset, extra = SHRUNK[name]
    if dataset == "polarity":
        data = _polarity_data(shared_data, tmp_path / "polarity_set")
    else:
        data = shared_data / dataset
        if not data.exists():
            pytest.skip(f"{data} not found")
    run = tmp_path / "run"
    args = [
        "train",
        "--config",
        str(CONFIGS / name),
        "--data",
        str(data),
        "--out",
        str(run),
        "--epochs",
        "1",
        "--num-workers",
        "0",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--set",
        "n_bootstrap=0",
        "--no-progress",
        *extra,
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, (result.output, result.exception)
    card = read_card(run / "model.safetensors").to_dict()
    task, classes = EXPECTED[name]
    assert card["task"] == task
    if classes is not None:
        assert card["class_names"] == classes
    assert card["training"]["config"]["backbone"] == load_config(CONFIGS / name).backbone
    assert [row["epoch"] for row in json.loads((run / "history.json").read_text())] == [1]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["n"] > 0 and metrics["task"] == task
    assert (run / "report.html").is_file() and (run / "roc.png").is_file()
