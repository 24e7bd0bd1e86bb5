"""Train the lung U-Net: patient-disjoint split, hard augmentation, early stop on val Dice."""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrkit.card import ModelCard
from cxrkit.data.identity import data_record, portable_paths
from cxrkit.errors import CxrkitError
from cxrkit.fit.checkpoint import RunCheckpoints, refuse_fresh_start
from cxrkit.fit.engine import Plan, Recipe, Validation, fit
from cxrkit.fit.schedule import Schedule
from cxrkit.io import resize_film
from cxrkit.io.atomic import atomic_write_text
from cxrkit.models.model_file import provenance
from cxrkit.segment.augment import SegAugment
from cxrkit.segment.evaluate import (
    annotator_agreement,
    group_summaries,
    score_mask_films,
    write_results,
)
from cxrkit.segment.infer import (
    DEFAULT_POSTPROCESS,
    LungModel,
    load_lung_model,
    predict_probs,
    probs_to_mask,
)
from cxrkit.segment.losses import LOSSES, make_loss
from cxrkit.segment.metrics import dice
from cxrkit.segment.model import (
    DEFAULT_DECODER,
    DEFAULT_ENCODER,
    DEFAULT_SIZE,
    LungNet,
    load_encoder_weights,
    save_lung_model,
)
from cxrkit.segment.resume import STATE_NAME, clear_state, learning_options, state_path
from cxrkit.segment.sets import (
    MaskFilm,
    fraction_splits,
    load_mask_sets,
    patient_splits,
    read_set_split,
    write_set_split,
)

log = logging.getLogger("cxrkit.segment")
MODEL_NAME = "model.safetensors"
VIEWS = ("frontal", "lateral")
# The card claims lateral support only when the lateral validation films score this well.
LATERAL_VAL_DICE = 0.85


@dataclass
class SegTrainConfig:
    """Options of a lung U-Net training run (saved in the model card)."""

    encoder: str = DEFAULT_ENCODER
    weights: str | None = None  # ImageNet checkpoint for the encoder; None: random init
    init: str | None = None  # a lung model file to continue from (its encoder and decoder)
    decoder_channels: tuple[int, ...] = DEFAULT_DECODER
    size: int = DEFAULT_SIZE
    epochs: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    encoder_lr_scale: float = 0.5
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    patience: int = 12
    # None/None: the shared patient-id hash (cxrkit.data.patient_split, 65/15/20 % of
    # patients), which the screening net uses too; fractions: a stratified split instead.
    val_fraction: float | None = None
    test_fraction: float | None = None
    train_views: tuple[str, ...] = VIEWS  # views whose training films the net learns from
    # Each mask set (annotator) weighs the same: training films are drawn so that every set
    # gives as many examples per epoch, and validation Dice is the mean of the per-set means
    # (for the best epoch and the inference choices). False: every film weighs the same.
    balance_sets: bool = False
    loss: str = "bce_dice"  # one of cxrkit.segment.losses.LOSSES
    # Exponential moving average of the weights (decay per step; None: off). Validation,
    # the best epoch and the saved model then use the averaged weights, which move less
    # from epoch to epoch than the raw ones under heavy augmentation.
    ema_decay: float | None = None
    split_file: str | None = None
    seed: int = 0
    # Time budget: the cosine decay runs over whichever ends first, the epochs or this many
    # minutes, so a run cut by the clock still ends at a low learning rate.
    max_minutes: float | None = None
    threads: int | None = None
    augment: dict[str, Any] = field(default_factory=lambda: SegAugment().to_dict())

    def __post_init__(self) -> None:
        """Refuse options that would fail late (after every film is read) or train nothing."""
        import timm

        if self.loss not in LOSSES:
            raise CxrkitError(f"loss={self.loss!r}: choose one of {list(LOSSES)}")
        if self.ema_decay is not None and not 0.0 < self.ema_decay < 1.0:
            raise CxrkitError(f"ema_decay={self.ema_decay}: must lie between 0 and 1")
        if self.size < 32 or self.size % 32:
            raise CxrkitError(f"size={self.size}: must be a positive multiple of 32")
        for name in ("epochs", "batch_size", "patience"):
            if getattr(self, name) < 1:
                raise CxrkitError(f"{name}={getattr(self, name)}: must be at least 1")
        if not self.lr > 0 or (self.max_minutes is not None and not self.max_minutes > 0):
            raise CxrkitError(f"lr={self.lr}, max_minutes={self.max_minutes}: must be > 0")
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if value is not None and not 0.0 < value < 1.0:
                raise CxrkitError(f"{name}={value}: must lie between 0 and 1")
        if not timm.is_model(self.encoder):
            raise CxrkitError(
                f"encoder={self.encoder!r}: not a timm model name (e.g. mobilenetv2_100, "
                "efficientnet_lite0)"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict view (JSON friendly)."""
        d = dataclasses.asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        d["train_views"] = list(self.train_views)
        return d


def train_lung_model(
    data: str | Path | Sequence[str | Path],
    out_dir: str | Path,
    cfg: SegTrainConfig,
    show_progress: bool = True,
    resume: bool = False,
) -> dict[str, Any]:
    """Train on one or more mask sets (labels.csv with `mask`) into `out_dir`.

    After every epoch the run's state is saved to `out_dir/last.pt`; with `resume`, a run
    that was killed continues after its last completed epoch (same options and split). A
    fresh run (no `resume`) in a folder holding such a state is refused, not started over.

    Several sets (annotators) share one patient-disjoint split; a film masked in two
    sets gives two examples on the same side. Writes `model.safetensors` (fp16 weights +
    card), `split.csv` (with a `set` column), `history.json`, `train.log`, and `val/` and
    `test/` folders with `metrics.json` and `per_film.csv`. The threshold, post-processing,
    flip-TTA and the card's `views` are chosen on the validation split only. Returns the
    val and test summaries (overall, per set, per view).
    """
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _log_to(out / "train.log", show_progress)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    sources = [data] if isinstance(data, str | Path) else list(data)
    bad_views = set(cfg.train_views) - set(VIEWS)
    if bad_views or not cfg.train_views:
        raise CxrkitError(f"train views must be some of {VIEWS}, got {list(cfg.train_views)}")
    all_films = load_mask_sets(sources)
    resuming = resume and state_path(out).is_file()
    refuse_fresh_start(out, resume)  # never throw a killed run's epochs away
    if resume and not resuming:
        log.info("no %s in %s: starting from epoch 1", STATE_NAME, out)
    splits = read_set_split(out / "split.csv", all_films) if resuming else _split(all_films, cfg)
    if any(len(splits[k]) == 0 for k in ("train", "val")):
        raise CxrkitError(f"too few films to split ({ {k: len(v) for k, v in splits.items()} })")
    write_set_split(out / "split.csv", all_films, splits)
    log.info("data %s: %s", [str(s) for s in sources], _split_counts(all_films, splits))

    t_read = time.time()
    films = {name: [all_films[int(i)] for i in idx] for name, idx in splits.items()}
    used = {n: [f for f in fs if f.view_group in cfg.train_views] for n, fs in films.items()}
    x_train, y_train, train_sets = _resized_films(used["train"], cfg.size)
    pairs = {name: [f.read() for f in films[name]] for name in ("val", "test")}
    val_kept = set(used["val"])
    val_used = [p for p, f in zip(pairs["val"], films["val"], strict=True) if f in val_kept]
    val_sets = [f.set_name for f in films["val"] if f in val_kept]
    draw = _set_balanced_weights(train_sets) if cfg.balance_sets else None
    log.info(
        "read %d films in %.1fs (training on %d, views %s)",
        len(all_films),
        time.time() - t_read,
        len(x_train),
        list(cfg.train_views),
    )

    net = LungNet(cfg.encoder, cfg.decoder_channels)
    if resuming:
        log.info("resuming from %s", state_path(out))
    elif cfg.init:
        _load_init(net, cfg.init)
        log.info("U-Net starts from the lung model %s", cfg.init)
    elif cfg.weights:
        n = load_encoder_weights(net, cfg.weights)
        log.info("encoder %s: %d tensors from %s", cfg.encoder, n, cfg.weights)
    else:
        log.warning("encoder %s starts from random weights (pass --weights)", cfg.encoder)
    net = net.to(memory_format=torch.channels_last)
    enc_params = list(net.encoder.parameters())
    enc_ids = {id(p) for p in enc_params}
    rest = [p for p in net.parameters() if id(p) not in enc_ids]
    opt = torch.optim.AdamW(
        [
            {"params": enc_params, "lr": cfg.lr * cfg.encoder_lr_scale},
            {"params": rest, "lr": cfg.lr},
        ],
        weight_decay=cfg.weight_decay,
    )
    augment = SegAugment(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.augment.items()}
    )
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    val = (val_used, val_sets)
    recipe = _LungRecipe(net, (x_train, y_train), draw, augment, gen, cfg, val, out)
    plan = Plan(
        rounds=cfg.epochs,
        schedule=Schedule("cosine", warmup=min(1.0, cfg.warmup_epochs / cfg.epochs)),
        total_steps=cfg.epochs * steps_per_epoch,
        max_seconds=60.0 * cfg.max_minutes if cfg.max_minutes else None,
        patience=cfg.patience,
        ema_decay=cfg.ema_decay,
    )
    checkpoints = RunCheckpoints(out, learning_options(cfg.to_dict()))
    fitted = fit(recipe, opt, plan, checkpoints=checkpoints, resume=resuming)
    history = fitted.history
    net = net.to(memory_format=torch.contiguous_format).eval()
    train_seconds = time.time() - t0

    choice, candidates = choose_inference(net, cfg, val_used, val_sets, out)
    fields = _card_fields(cfg, choice)
    fields["training"].update(
        {
            "data": [data_record(s) for s in sources],
            "split": "patient_hash" if _hash_split(cfg) else "file_or_fractions",
            "films": _split_counts(all_films, splits),
            "n_train": len(x_train),
            "n_val": len(splits["val"]),
            "n_test": len(splits["test"]),
            "epochs_run": len(history),
            "best_epoch": fitted.best_epoch,
            "best_val_dice_during_training": round(fitted.best_score, 5),
            "wall_seconds": round(train_seconds, 1),  # of this process (after a resume)
            "resumed_after_epoch": fitted.resumed_after,
            "inference_choices_on_val": candidates,
        }
    )
    save_lung_model(out / MODEL_NAME, net, fields)
    atomic_write_text(out / "history.json", json.dumps(history, indent=2))

    results = score_splits(out / MODEL_NAME, films, pairs, out)
    fields["views"] = _supported_views(cfg, results.get("val"))
    log.info("views supported (chosen on val): %s", fields["views"])
    fields["metrics"] = {k: headline_metrics(v) for k, v in results.items()}
    save_lung_model(out / MODEL_NAME, net, fields)
    clear_state(out)  # the model file is the result now
    return results


def score_splits(
    model_file: Path,
    films: dict[str, list[MaskFilm]],
    pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]],
    out: Path,
) -> dict[str, Any]:
    """Score the saved file (exactly as it ships) on the val and test films; writes
    `<out>/<split>/metrics.json` and `per_film.csv` and returns the summaries."""
    shipped = load_lung_model(model_file)
    results: dict[str, Any] = {}
    for name in ("val", "test"):
        if not films.get(name):
            continue
        rows = score_mask_films(shipped, films[name], pairs[name])
        masks = [m for _, m in pairs[name]]
        summary = {
            "split": name,
            **group_summaries(rows),
            "annotators": annotator_agreement(films[name], rows, masks),
        }
        write_results(out / name, summary, rows)
        results[name] = summary
        log.info(
            "%s: Dice %.4f (worst %.4f) IoU %.4f HD95 %.1f px",
            name,
            summary["dice"]["mean"],
            summary["dice"]["min"],
            summary["iou"]["mean"],
            summary["hd95"]["mean"],
        )
    return results


def _load_init(net: LungNet, path: str) -> None:
    """Copy a lung model file's weights into `net` (same encoder and decoder required)."""
    from cxrkit.segment.model import load_lung_net

    start, _ = load_lung_net(path)
    if not isinstance(start, LungNet):
        raise CxrkitError(f"init={path}: an ensemble of lung U-Nets; continue from one member")
    if (start.encoder_name, start.decoder_channels) != (net.encoder_name, net.decoder_channels):
        raise CxrkitError(
            f"init={path}: a {start.encoder_name} U-Net with decoder {start.decoder_channels}, "
            f"not {net.encoder_name} with {net.decoder_channels}"
        )
    net.load_state_dict(start.state_dict())


class _LungRecipe(Recipe):
    """Augmented batches of the resized training films (each set weighed alike with
    `balance_sets`), the configured loss, and validation Dice (`val_score`)."""

    loss_key = "loss"
    score_name = "val Dice"

    def __init__(
        self,
        net: LungNet,
        train: tuple[torch.Tensor, torch.Tensor],
        draw: torch.Tensor | None,
        augment: SegAugment,
        gen: torch.Generator,
        cfg: SegTrainConfig,
        val: tuple[list[tuple[np.ndarray, np.ndarray]], list[str]],
        out: Path,
    ) -> None:
        self.module, (self.x, self.y), self.draw = net, train, draw
        self.augment, self.gen, self.cfg = augment, gen, cfg
        self.val_pairs, self.val_sets, self.out = *val, out
        self.loss_fn = make_loss(cfg.loss)

    def train_batches(self, round_: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """One epoch: a permutation, or (balanced sets) films drawn with replacement."""
        n, bs = len(self.x), self.cfg.batch_size
        if self.draw is None:
            order = torch.randperm(n, generator=self.gen)
        else:  # as many examples of each set per epoch
            order = torch.multinomial(self.draw, n, replacement=True, generator=self.gen)
        for s in range(0, len(order), bs):
            sel = order[s : s + bs]
            yield self.augment(self.x[sel].clone(), self.y[sel].clone(), self.gen)

    def loss(self, module: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]):
        """The configured segmentation loss on the logits."""
        xb, yb = batch
        return self.loss_fn(module(xb.contiguous(memory_format=torch.channels_last)), yb)

    def validate(self, module: torch.nn.Module) -> Validation:
        """Mean validation Dice of `module` (the weight average when one is kept)."""
        probe = LungModel(module, lung_card(self.cfg, {}), self.out / MODEL_NAME)
        probs = predict_probs(probe, [film for film, _ in self.val_pairs])
        scores = [
            dice(probs_to_mask(probe, p), truth)
            for p, (_, truth) in zip(probs, self.val_pairs, strict=True)
        ]
        mean = val_score(scores, self.val_sets, self.cfg.balance_sets)
        worst = float(min(scores))
        text = f"val Dice {mean:.4f} (min {worst:.4f})"
        return Validation(mean, {"val_dice": mean, "val_dice_min": worst}, text)

    def state_dict(self) -> dict[str, Any]:
        """The generator of the epoch orders and augmentations."""
        return {"generator": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore the generator."""
        self.gen.set_state(state["generator"])


def _hash_split(cfg: SegTrainConfig) -> bool:
    return not cfg.split_file and cfg.val_fraction is None and cfg.test_fraction is None


def _split(films: list[MaskFilm], cfg: SegTrainConfig) -> dict[str, np.ndarray]:
    if cfg.split_file:
        return read_set_split(cfg.split_file, films)
    if _hash_split(cfg):
        return patient_splits(films)
    val = 0.15 if cfg.val_fraction is None else cfg.val_fraction
    test = 0.20 if cfg.test_fraction is None else cfg.test_fraction
    return fraction_splits(films, val=val, test=test, seed=cfg.seed)


def _split_counts(films: list[MaskFilm], splits: dict[str, np.ndarray]) -> dict[str, Any]:
    """Films and patients per part, and films per set and view within each part."""
    out: dict[str, Any] = {}
    for name, idx in splits.items():
        part = [films[int(i)] for i in idx]
        per: dict[str, dict[str, int]] = {}
        for f in part:
            per.setdefault(f.set_name, {}).setdefault(f.view_group, 0)
            per[f.set_name][f.view_group] += 1
        out[name] = {
            "films": len(part),
            "patients": len({f.patient_id for f in part}),
            "per_set_view": per,
        }
    return out


def _supported_views(cfg: SegTrainConfig, val: dict | None) -> list[str]:
    """['frontal'], plus 'lateral' when laterals were trained on and the lateral validation
    films reach `LATERAL_VAL_DICE` mean Dice (the test split plays no part)."""
    views = ["frontal"]
    lateral = (val or {}).get("groups", {}).get("view", {}).get("lateral")
    if "lateral" in cfg.train_views and lateral and lateral["dice"]["mean"] >= LATERAL_VAL_DICE:
        views.append("lateral")
    return views


def _resized_films(
    films: list[MaskFilm], size: int
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(films, masks) squashed to `size` (decoded one at a time: full-size films are not
    kept), and the set name of each film kept.

    A film whose mask is empty is left out: every chest film has lungs, so an empty mask
    is a missing annotation (all 17 lateral films of lungmasks_v7 have one), and learning
    from it would teach the net to return silent empty masks.
    """
    xs, ys, sets = [], [], []
    empty = []
    for f in films:
        film, mask = f.read()
        if not mask.any():
            empty.append(f"{f.set_name}/{f.path}")
            continue
        xs.append(resize_film(film, size, "squash"))
        ys.append(resize_film(mask.astype(np.float32), size, "squash") > 0.5)
        sets.append(f.set_name)
    if empty:
        log.warning(
            "left out %d training film(s) with an empty mask, e.g. %s", len(empty), empty[:3]
        )
    if not xs:
        raise CxrkitError("no training film has a non-empty mask")
    x = torch.from_numpy(np.stack(xs))[:, None]
    return x, torch.from_numpy(np.stack(ys).astype(np.float32))[:, None], sets


def val_score(scores: Sequence[float], sets: Sequence[str], balance_sets: bool) -> float:
    """Mean validation Dice; with `balance_sets`, the mean of each set's (annotator's) mean."""
    if not balance_sets:
        return float(np.mean(scores))
    per_set: dict[str, list[float]] = {}
    for score, name in zip(scores, sets, strict=True):
        per_set.setdefault(name, []).append(score)
    return float(np.mean([np.mean(v) for v in per_set.values()]))


def _set_balanced_weights(sets: Sequence[str]) -> torch.Tensor:
    """Sampling weight per training film: 1 / (films of its set), so each set sums to 1."""
    counts = Counter(sets)
    return torch.tensor([1.0 / counts[name] for name in sets], dtype=torch.double)


def choose_inference(net, cfg, val_pairs, val_sets, out) -> tuple[dict, list[dict]]:
    """Pick threshold, post-processing and flip-TTA by val Dice (`val_score`); returns the
    choice and every candidate's score.

    A candidate must beat the earlier ones by 1e-4 to win, so ties keep no TTA (half the
    compute), the clean-up of stray blobs (a prior: at most two lungs) and threshold 0.5.
    """
    candidates = []
    best: tuple[float, dict] | None = None
    truths = [mask for _, mask in val_pairs]
    for tta in (False, True):
        probe = LungModel(net, lung_card(cfg, {"tta_hflip": tta}), out / MODEL_NAME)
        probs = predict_probs(probe, [film for film, _ in val_pairs])
        for post in (DEFAULT_POSTPROCESS, None):
            for threshold in (0.5, 0.4, 0.6):
                choice = {"threshold": threshold, "postprocess": post, "tta_hflip": tta}
                probe.card = probe.card.merged(**choice_fields(choice))
                scores = [
                    dice(probs_to_mask(probe, p), t) for p, t in zip(probs, truths, strict=True)
                ]
                dice_mean = val_score(scores, val_sets, cfg.balance_sets)
                candidates.append({**choice, "val_dice": round(dice_mean, 5)})
                if best is None or dice_mean > best[0] + 1e-4:
                    best = (dice_mean, choice)
    assert best is not None
    log.info("chosen on val: %s (Dice %.4f)", best[1], best[0])
    return best[1], candidates


def choice_fields(choice: dict[str, Any]) -> dict[str, Any]:
    """A `choose_inference` choice as card fields: the threshold as the segmentation
    decision's `thresholds: [t]`, no clean-up (None) as `postprocess: {}`."""
    fields: dict[str, Any] = {}
    if "threshold" in choice:
        fields["thresholds"] = [float(choice["threshold"])]
    if "postprocess" in choice:
        fields["postprocess"] = dict(choice["postprocess"] or {})
    if "tta_hflip" in choice:
        fields["tta_hflip"] = bool(choice["tta_hflip"])
    return fields


def _card_fields(cfg: SegTrainConfig, choice: dict[str, Any]) -> dict[str, Any]:
    """The JSON fields of a lung card for this run and inference choice (defaults:
    threshold 0.5, the default clean-up, no flip-TTA)."""
    return {
        "task": "segmentation",
        "class_names": ["lungs"],
        "preprocessing": {
            "size": cfg.size,
            "resize_mode": "squash",
            "channels": "grayscale",
            "input_range": [0.0, 1.0],
            "normalization": "ImageNet mean/std, applied inside the network",
            "output": "probabilities resized bilinearly to the film's original size",
        },
        "thresholds": [0.5],
        "postprocess": dict(DEFAULT_POSTPROCESS),
        "tta_hflip": False,
        **choice_fields(choice),
        "training": {
            "config": portable_paths(cfg.to_dict(), ("weights", "init", "split_file")),
            **provenance(),
        },
    }


def lung_card(cfg: SegTrainConfig, choice: dict[str, Any]) -> ModelCard:
    """The validated lung card of a run for an inference choice (see `_card_fields`)."""
    return ModelCard.from_dict(_card_fields(cfg, choice), source="lung training card")


def headline_metrics(summary: dict) -> dict:
    def short(s: dict) -> dict:
        return {
            "n": s["n"],
            "dice": {"mean": s["dice"]["mean"], "min": s["dice"]["min"]},
            "iou": {"mean": s["iou"]["mean"], "min": s["iou"]["min"]},
            "hd95": {"mean": s["hd95"]["mean"], "max": s["hd95"]["max"]},
        }

    groups = summary.get("groups", {})
    return {
        **short(summary),
        "worst": summary["worst"],
        **{kind: {k: short(v) for k, v in groups.get(kind, {}).items()} for kind in groups},
    }


def _log_to(path: Path, console: bool) -> None:
    from cxrkit.logfile import attach_log_file

    attach_log_file(path)
    logger = logging.getLogger("cxrkit")
    if console and not any(type(h) is logging.StreamHandler for h in logger.handlers):
        logger.addHandler(logging.StreamHandler())
