"""TrainConfig from YAML plus command-line overrides: precedence, types and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrkit.errors import CxrkitError
from cxrkit.train.config import TrainConfig, load_config, parse_overrides


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cfg.yaml"
    path.write_text(text)
    return path


def test_cli_overrides_beat_the_file_and_none_means_unset(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "epochs: 7\nlr: 0.01\nbackbone: small_cnn\n")
    cfg = load_config(path, {"epochs": 3, "lr": None})
    assert (cfg.epochs, cfg.lr, cfg.backbone) == (3, 0.01, "small_cnn")


def test_weights_override_clears_random_init_and_back(tmp_path: Path) -> None:
    path = _yaml(tmp_path, "backbone: vgg16\nrandom_init: true\n")
    assert load_config(path).random_init
    with_weights = load_config(path, {"weights": "vgg16.pth"})
    assert with_weights.weights == "vgg16.pth" and not with_weights.random_init
    path2 = _yaml(tmp_path, "backbone: vgg16\nweights: vgg16.pth\n")
    scratch = load_config(path2, {"random_init": True})
    assert scratch.random_init and scratch.weights is None


def test_set_values_are_yaml_and_may_be_null() -> None:
    sets = parse_overrides(["n_bootstrap=50", "augment=null", "scale_me=[1, 2]", "task=binary"])
    assert sets == {"n_bootstrap": 50, "augment": None, "scale_me": [1, 2], "task": "binary"}
    cfg = load_config(None, None, {"augment": None, "head_hidden": None})
    assert cfg.augment is None and cfg.head_hidden is None


@pytest.mark.parametrize("pair", ["lr", "=3", "lr=[1,"])
def test_bad_set_pairs(pair: str) -> None:
    with pytest.raises(CxrkitError, match="override") as info:
        parse_overrides([pair])
    assert "--set" not in str(info.value)  # a library error names no CLI flag


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"epochz": 3}, "unknown config option"),
        ({"epochs": "ten"}, "'epochs' must be int"),
        ({"epochs": True}, "'epochs' must be int"),
        ({"lr": "fast"}, "'lr' must be float"),
        ({"augment": [1, 2]}, "'augment' must be"),
        ({"mode": "linear"}, "mode must be one of"),
        ({"epochs": 0}, "epochs and batch_size"),
        ({"early_stopping_patience": 0}, "early_stopping_patience"),
        ({"finetune_blocks": -1}, "finetune_blocks"),
        ({"lr": 0.0}, "lr must be > 0"),
    ],
)
def test_bad_values_are_one_clear_error(values: dict, match: str) -> None:
    with pytest.raises(CxrkitError, match=match):
        load_config(None, None, values)
    if "unknown" not in match:  # the dataclass checks itself too, without load_config
        with pytest.raises(CxrkitError, match=match):
            TrainConfig(**values)


def test_an_int_is_a_fine_float() -> None:
    assert load_config(None, {"lr": 1}).lr == 1


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(CxrkitError, match="not found"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(CxrkitError, match="mapping"):
        load_config(_yaml(tmp_path, "- a\n- b\n"))
    with pytest.raises(CxrkitError, match="not valid YAML"):
        load_config(_yaml(tmp_path, "epochs: [1,\n"))
