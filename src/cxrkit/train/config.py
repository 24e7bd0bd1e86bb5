"""Training configuration: a dataclass, read from YAML and overridden from the command line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from cxrkit.errors import CxrkitError

DEFAULT_AUGMENT: dict[str, Any] = {
    "hflip": True,
    "rotate_deg": 10.0,
    "scale": [0.9, 1.1],
    "translate": 0.05,
    "brightness": 0.1,
    "contrast": 0.1,
}


@dataclass
class TrainConfig:
    """Everything a training run needs besides the data; saved into the run and the model card."""

    backbone: str = "efficientnet_lite0"
    mode: str = "features"  # "features": cached CNN codes + small head; "finetune": train the net
    task: str | None = None  # binary | multiclass | multilabel; inferred from labels when None
    label_column: str = "label"
    weights: str | None = None  # local file, "hub", or None (then random_init must be set)
    random_init: bool = False
    image_size: int | None = None  # None: the backbone's default input size
    resize_mode: str = "squash"  # squash | pad | crop
    head_hidden: int | None = 256  # hidden units of the MLP head; None: a linear head
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 32
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "cosine"  # cosine | step | none
    step_size: int = 10
    gamma: float = 0.1
    early_stopping_patience: int = 8
    balance: str = "loss"  # loss (class weights) | sampler | none
    augment: dict[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_AUGMENT))
    feature_augment_copies: int = 0  # features mode: extra augmented passes over the train set
    finetune_blocks: int | None = None  # finetune mode: train only the last k backbone blocks
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_file: str | None = None  # reuse a split.csv instead of drawing one
    seed: int = 0
    num_workers: int = 2
    cache_dir: str | None = None  # decoded films and CNN codes; default ~/.cache/cxrkit
    threshold_method: str = "youden"  # youden | sensitivity
    target_sensitivity: float = 0.95
    max_images: int | None = None  # use a stratified subset (for smoke tests)
    n_bootstrap: int = 1000
    device: str = "auto"

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict view (JSON/YAML friendly)."""
        return dataclasses.asdict(self)


def load_config(
    path: str | Path | None = None, overrides: dict[str, Any] | None = None
) -> TrainConfig:
    """Read a YAML config (optional) and apply non-None overrides; unknown keys are an error."""
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise CxrkitError(f"{p}: config file not found")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise CxrkitError(f"{p}: a config must be a YAML mapping of option: value")
        values.update(loaded)
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CxrkitError(f"unknown config option(s) {unknown}; known: {sorted(known)}")
    cfg = TrainConfig(**values)
    _validate(cfg)
    return cfg


def _validate(cfg: TrainConfig) -> None:
    choices = {
        "mode": ("features", "finetune"),
        "optimizer": ("adamw", "sgd"),
        "scheduler": ("cosine", "step", "none"),
        "balance": ("loss", "sampler", "none"),
        "resize_mode": ("squash", "pad", "crop"),
        "threshold_method": ("youden", "sensitivity"),
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise CxrkitError(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}")
    if cfg.task not in (None, "binary", "multiclass", "multilabel"):
        raise CxrkitError(f"task must be binary, multiclass or multilabel, got {cfg.task!r}")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise CxrkitError("epochs and batch_size must be >= 1")
