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
    crop: str | None = None  # None | "lungs": crop to the lung box (cxrkit.segment) first
    head_hidden: int | None = 256  # hidden units of the MLP head; None: a linear head
    dropout: float = 0.3
    epochs: int = 30
    batch_size: int = 32  # the global batch: split over processes and accumulation steps
    accumulate: int = 1  # micro-batches per optimizer step (gradient accumulation)
    precision: str = "auto"  # auto (bf16/fp16 on GPU, fp32 on CPU) | fp32 | bf16 | fp16
    optimizer: str = "adamw"  # adamw | sgd
    lr: float = 1e-3
    weight_decay: float = 1e-4
    momentum: float = 0.9
    scheduler: str = "cosine"  # cosine | step | none
    step_size: int = 10
    gamma: float = 0.1
    early_stopping_patience: int = 8
    balance: str = "loss"  # loss (class weights) | sampler | none
    # augmentation of training films (see cxrkit.data.augment); None: no augmentation
    augment: dict[str, Any] | None = field(default_factory=lambda: dict(DEFAULT_AUGMENT))
    feature_augment_copies: int = 0  # features mode: extra augmented passes over the train set
    finetune_blocks: int | None = None  # finetune mode: train only the last k backbone blocks
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_file: str | None = None  # reuse a split.csv instead of drawing one
    seed: int = 0
    num_workers: int = 2
    cache_dir: str | None = None  # decoded films and CNN codes; default ~/.cache/cxrkit
    threshold_method: str = "youden"  # youden | midpoint | sensitivity[:X] | cost:RATIO
    target_sensitivity: float = 0.95
    max_images: int | None = None  # use a stratified subset (for smoke tests)
    fix_polarity: bool = False  # invert films the polarity model is sure are inverted
    n_bootstrap: int = 1000
    shards: str | None = None  # finetune: stream the training films from WebDataset shards
    epoch_films: int | None = None  # with shards: films per epoch, over all processes
    device: str = "auto"
    model_name: str | None = None  # the card's `name` (DICOM reports); None: the run folder's
    model_version: str | None = None  # the card's `version`; None: the cxrkit version
    # labelled sets that chose anything about this model (recipe, head, threshold method...):
    # {path: [what it chose]}; the card lists them by fingerprint and `cxr evaluate` marks
    # their figures "used for selection: optimistic" (cxrkit.data.selection)
    selection_sets: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        """Check every option on construction: types first, then allowed values."""
        for name in ("model_name", "model_version"):  # YAML reads `2.1` as a number
            value = getattr(self, name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                setattr(self, name, str(value))
        _check_types({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        _validate(self)

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict view (JSON/YAML friendly)."""
        return dataclasses.asdict(self)


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    sets: dict[str, Any] | None = None,
) -> TrainConfig:
    """Read a YAML config (optional) and apply overrides; unknown keys are an error.

    `overrides` (CLI options) apply where not None; `sets` (`--set KEY=VALUE`) apply as
    given, None included. An override of `weights` clears the file's `random_init` and
    vice versa, so a preset that starts from random weights takes `--weights PATH`.
    """
    values: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise CxrkitError(f"{p}: config file not found")
        try:
            loaded = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            raise CxrkitError(f"{p}: not valid YAML ({' '.join(str(exc).split())})") from exc
        if not isinstance(loaded, dict):
            raise CxrkitError(f"{p}: a config must be a YAML mapping of option: value")
        values.update(loaded)
    given = {k: v for k, v in (overrides or {}).items() if v is not None}
    given.update(sets or {})
    if given.get("weights") is not None and "random_init" not in given:
        values["random_init"] = False
    if given.get("random_init") is True and "weights" not in given:
        values["weights"] = None
    values.update(given)
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise CxrkitError(f"unknown config option(s) {unknown}; known: {sorted(known)}")
    return TrainConfig(**values)  # checks itself (types, then values)


_TYPES: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "None": (type(None),),
    "dict[str, Any]": (dict,),
}


def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` strings (values read as YAML: `lr=0.01`, `augment=null`) -> a dict."""
    out: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key.strip():
            raise CxrkitError(f"an override must be KEY=VALUE, got {pair!r}")
        try:
            out[key.strip()] = yaml.safe_load(raw) if raw.strip() else None
        except yaml.YAMLError as exc:
            raise CxrkitError(f"override {pair!r}: value is not valid YAML ({exc})") from exc
    return out


def _check_types(values: dict[str, Any]) -> None:
    """Each value must match its field's annotation (a bool is not an int here)."""
    for f in dataclasses.fields(TrainConfig):
        if f.name not in values:
            continue
        value = values[f.name]
        allowed = [t for part in str(f.type).split("|") for t in _TYPES.get(part.strip(), ())]
        if not allowed:
            continue
        if isinstance(value, bool) and bool not in allowed:
            ok = False
        else:
            ok = isinstance(value, tuple(allowed))
        if not ok:
            raise CxrkitError(
                f"config option {f.name!r} must be {f.type}, got {value!r} ({type(value).__name__})"
            )


def _validate(cfg: TrainConfig) -> None:
    choices = {
        "mode": ("features", "finetune"),
        "optimizer": ("adamw", "sgd"),
        "scheduler": ("cosine", "step", "none"),
        "balance": ("loss", "sampler", "none"),
        "resize_mode": ("squash", "pad", "crop"),
        "crop": (None, "lungs"),
    }
    for name, allowed in choices.items():
        if getattr(cfg, name) not in allowed:
            raise CxrkitError(f"{name} must be one of {allowed}, got {getattr(cfg, name)!r}")
    from cxrkit.evaluate.thresholds import parse_threshold_method

    parse_threshold_method(cfg.threshold_method, cfg.target_sensitivity)  # one spelling rule
    for source, used in (cfg.selection_sets or {}).items():
        chose = [used] if isinstance(used, str) else used
        if not (isinstance(chose, list) and chose and all(isinstance(u, str) for u in chose)):
            raise CxrkitError(
                f"selection_sets[{source!r}] must name what the set chose (a string or a list "
                f"of strings, e.g. [recipe, threshold method]), got {used!r}"
            )
    if cfg.task not in (None, "binary", "multiclass", "multilabel"):
        raise CxrkitError(f"task must be binary, multiclass or multilabel, got {cfg.task!r}")
    if cfg.epochs < 1 or cfg.batch_size < 1:
        raise CxrkitError("epochs and batch_size must be >= 1")
    if cfg.accumulate < 1 or cfg.batch_size % cfg.accumulate:
        raise CxrkitError(
            f"accumulate must be >= 1 and divide batch_size {cfg.batch_size}, got {cfg.accumulate}"
        )
    if cfg.shards is not None and cfg.mode != "finetune":
        raise CxrkitError("shards stream training films in mode 'finetune' only")
    if cfg.epoch_films is not None and cfg.epoch_films < 1:
        raise CxrkitError(f"epoch_films must be >= 1, got {cfg.epoch_films}")
    if cfg.precision not in ("auto", "fp32", "bf16", "fp16"):
        raise CxrkitError(f"precision must be auto, fp32, bf16 or fp16, got {cfg.precision!r}")
    if cfg.early_stopping_patience < 1:
        raise CxrkitError("early_stopping_patience must be >= 1")
    if cfg.finetune_blocks is not None and cfg.finetune_blocks < 0:
        raise CxrkitError("finetune_blocks must be >= 0 (or null: train the whole net)")
    if cfg.image_size is not None and cfg.image_size < 1:
        raise CxrkitError("image_size must be >= 1 (or null: the backbone's default)")
    if not cfg.lr > 0:
        raise CxrkitError(f"lr must be > 0, got {cfg.lr}")
    if cfg.max_images is not None and cfg.max_images < 2:
        raise CxrkitError(f"max_images must be >= 2 (or null: every film), got {cfg.max_images}")
