"""Train the lung U-Net: patient-disjoint split, hard augmentation, early stop on val Dice."""

from __future__ import annotations

import copy
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cxrkit.data.identity import data_record
from cxrkit.data.splits import make_splits, read_split_csv, write_split_csv
from cxrkit.errors import CxrkitError
from cxrkit.io import resize_film
from cxrkit.models.model_file import provenance
from cxrkit.segment.augment import SegAugment
from cxrkit.segment.data import load_mask_table, read_pair
from cxrkit.segment.evaluate import score_films, write_results
from cxrkit.segment.infer import (
    DEFAULT_POSTPROCESS,
    LungModel,
    load_lung_model,
    predict_probs,
    probs_to_mask,
)
from cxrkit.segment.metrics import dice, summarize_scores
from cxrkit.segment.model import (
    DEFAULT_DECODER,
    DEFAULT_ENCODER,
    DEFAULT_SIZE,
    LungNet,
    load_encoder_weights,
    save_lung_model,
)

log = logging.getLogger("cxrkit.segment")
MODEL_NAME = "model.safetensors"


@dataclass
class SegTrainConfig:
    """Options of a lung U-Net training run (saved in the model card)."""

    encoder: str = DEFAULT_ENCODER
    weights: str | None = None  # ImageNet checkpoint for the encoder; None: random init
    decoder_channels: tuple[int, ...] = DEFAULT_DECODER
    size: int = DEFAULT_SIZE
    epochs: int = 40
    batch_size: int = 8
    lr: float = 1e-3
    encoder_lr_scale: float = 0.5
    weight_decay: float = 1e-4
    warmup_epochs: int = 2
    patience: int = 12
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    split_file: str | None = None
    seed: int = 0
    max_minutes: float | None = None  # stop early (keeping the best epoch) after this long
    threads: int | None = None
    augment: dict[str, Any] = field(default_factory=lambda: SegAugment().to_dict())

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict view (JSON friendly)."""
        d = dataclasses.asdict(self)
        d["decoder_channels"] = list(self.decoder_channels)
        return d


def train_lung_model(
    data: str | Path, out_dir: str | Path, cfg: SegTrainConfig, show_progress: bool = True
) -> dict[str, Any]:
    """Train on `data` (labels.csv with `mask`) into `out_dir`; returns val and test summaries.

    Writes `model.safetensors` (fp16 weights + card), `split.csv`, `history.json`,
    `train.log`, and `val/` and `test/` folders with `metrics.json` and `per_film.csv`.
    The threshold, post-processing and flip-TTA are chosen on the validation split only.
    """
    t0 = time.time()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _log_to(out / "train.log", show_progress)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)

    table = load_mask_table(data)
    if cfg.split_file:
        splits = read_split_csv(cfg.split_file, table)
    else:
        splits = make_splits(table, val=cfg.val_fraction, test=cfg.test_fraction, seed=cfg.seed)
    if any(len(splits[k]) == 0 for k in ("train", "val")):
        raise CxrkitError(
            f"{data}: too few films to split ({ {k: len(v) for k, v in splits.items()} })"
        )
    write_split_csv(out / "split.csv", table, splits)
    log.info("data %s: %s films per split", data, {k: len(v) for k, v in splits.items()})

    pairs = {name: [read_pair(table, int(i)) for i in idx] for name, idx in splits.items()}
    names = {name: [table.relpath(int(i)) for i in idx] for name, idx in splits.items()}
    patients = {
        name: [table.records[int(i)].patient_id for i in idx] for name, idx in splits.items()
    }
    x_train, y_train = _resized(pairs["train"], cfg.size)

    net = LungNet(cfg.encoder, cfg.decoder_channels)
    if cfg.weights:
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
    base_lrs = [g["lr"] for g in opt.param_groups]
    augment = SegAugment(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in cfg.augment.items()}
    )
    steps_per_epoch = math.ceil(len(x_train) / cfg.batch_size)
    total_steps = cfg.epochs * steps_per_epoch
    warmup = cfg.warmup_epochs * steps_per_epoch
    probe = LungModel(net, _card(cfg, {}), out / MODEL_NAME)

    history: list[dict[str, Any]] = []
    best = (-1.0, 0, copy.deepcopy(net.state_dict()))
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        t_epoch = time.time()
        net.train()
        order = torch.randperm(len(x_train), generator=gen)
        losses = []
        for s in range(0, len(order), cfg.batch_size):
            sel = order[s : s + cfg.batch_size]
            xb, yb = augment(x_train[sel].clone(), y_train[sel].clone(), gen)
            scale = min(1.0, (step + 1) / max(1, warmup))
            scale *= 0.5 * (1 + math.cos(math.pi * min(1.0, step / max(1, total_steps))))
            for group, lr in zip(opt.param_groups, base_lrs, strict=True):
                group["lr"] = lr * scale
            logits = net(xb.contiguous(memory_format=torch.channels_last))
            loss = _loss(logits, yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
        net.eval()
        val_probs = predict_probs(probe, [film for film, _ in pairs["val"]])
        val_scores = [
            dice(probs_to_mask(probe, p), truth)
            for p, (_, truth) in zip(val_probs, pairs["val"], strict=True)
        ]
        val_dice = float(np.mean(val_scores))
        history.append(
            {
                "epoch": epoch,
                "loss": float(np.mean(losses)),
                "val_dice": val_dice,
                "val_dice_min": float(min(val_scores)),
                "seconds": round(time.time() - t_epoch, 1),
            }
        )
        log.info(
            "epoch %d loss %.4f val Dice %.4f (min %.4f) %.0fs",
            epoch,
            history[-1]["loss"],
            val_dice,
            history[-1]["val_dice_min"],
            history[-1]["seconds"],
        )
        if val_dice > best[0]:
            best = (val_dice, epoch, copy.deepcopy(net.state_dict()))
        if epoch - best[1] >= cfg.patience:
            log.info("early stop: no val Dice gain for %d epochs", cfg.patience)
            break
        if cfg.max_minutes and time.time() - t0 > 60 * cfg.max_minutes:
            log.info("time budget of %.1f min reached", cfg.max_minutes)
            break
    net.load_state_dict(best[2])
    net = net.to(memory_format=torch.contiguous_format).eval()
    train_seconds = time.time() - t0

    choice, candidates = _choose_inference(net, cfg, pairs["val"], names["val"], out)
    card = _card(cfg, choice)
    card["training"].update(
        {
            "data": data_record(data),
            "n_train": len(splits["train"]),
            "n_val": len(splits["val"]),
            "n_test": len(splits["test"]),
            "epochs_run": len(history),
            "best_epoch": best[1],
            "best_val_dice_during_training": round(best[0], 5),
            "wall_seconds": round(train_seconds, 1),
            "inference_choices_on_val": candidates,
        }
    )
    save_lung_model(out / MODEL_NAME, net, card)
    (out / "history.json").write_text(json.dumps(history, indent=2))

    shipped = load_lung_model(out / MODEL_NAME)  # score the fp16 file exactly as it ships
    results: dict[str, Any] = {}
    for name in ("val", "test"):
        if len(splits[name]) == 0:
            continue
        rows = score_films(shipped, pairs[name], names[name], patients[name])
        summary = {"split": name, **summarize_scores(rows)}
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
    card["metrics"] = {k: _headline(v) for k, v in results.items()}
    save_lung_model(out / MODEL_NAME, net, card)
    return results


def _resized(
    pairs: list[tuple[np.ndarray, np.ndarray]], size: int
) -> tuple[torch.Tensor, torch.Tensor]:
    films = np.stack([resize_film(f, size, "squash") for f, _ in pairs])
    masks = np.stack([resize_film(m.astype(np.float32), size, "squash") > 0.5 for _, m in pairs])
    return torch.from_numpy(films)[:, None], torch.from_numpy(masks.astype(np.float32))[:, None]


def _loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy plus soft Dice loss."""
    bce = F.binary_cross_entropy_with_logits(logits, target)
    p = torch.sigmoid(logits)
    inter = (p * target).sum(dim=(1, 2, 3))
    soft_dice = (2 * inter + 1.0) / (p.sum(dim=(1, 2, 3)) + target.sum(dim=(1, 2, 3)) + 1.0)
    return bce + (1.0 - soft_dice).mean()


def _choose_inference(net, cfg, val_pairs, val_names, out) -> tuple[dict, list[dict]]:
    """Pick threshold, post-processing and flip-TTA by mean val Dice.

    A candidate must beat the earlier ones by 1e-4 to win, so ties keep no TTA (half the
    compute), the clean-up of stray blobs (a prior: at most two lungs) and threshold 0.5.
    """
    candidates = []
    best: tuple[float, dict] | None = None
    truths = [mask for _, mask in val_pairs]
    for tta in (False, True):
        probe = LungModel(net, _card(cfg, {"tta_hflip": tta}), out / MODEL_NAME)
        probs = predict_probs(probe, [film for film, _ in val_pairs])
        for post in (DEFAULT_POSTPROCESS, None):
            for threshold in (0.5, 0.4, 0.6):
                choice = {"threshold": threshold, "postprocess": post, "tta_hflip": tta}
                probe.card.update(choice)
                scores = [
                    dice(probs_to_mask(probe, p), t) for p, t in zip(probs, truths, strict=True)
                ]
                dice_mean = float(np.mean(scores))
                candidates.append({**choice, "val_dice": round(dice_mean, 5)})
                if best is None or dice_mean > best[0] + 1e-4:
                    best = (dice_mean, choice)
    assert best is not None
    log.info("chosen on val: %s (Dice %.4f)", best[1], best[0])
    return best[1], candidates


def _card(cfg: SegTrainConfig, choice: dict) -> dict[str, Any]:
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
        "threshold": choice.get("threshold", 0.5),
        "postprocess": choice.get("postprocess", DEFAULT_POSTPROCESS),
        "tta_hflip": choice.get("tta_hflip", False),
        "training": {
            "config": cfg.to_dict(),
            **provenance(),
        },
    }


def _headline(summary: dict) -> dict:
    return {
        "n": summary["n"],
        "dice": {"mean": summary["dice"]["mean"], "min": summary["dice"]["min"]},
        "iou": {"mean": summary["iou"]["mean"], "min": summary["iou"]["min"]},
        "hd95": {"mean": summary["hd95"]["mean"], "max": summary["hd95"]["max"]},
        "worst": summary["worst"],
    }


def _log_to(path: Path, console: bool) -> None:
    from cxrkit.logfile import attach_log_file

    attach_log_file(path)
    logger = logging.getLogger("cxrkit")
    if console and not any(type(h) is logging.StreamHandler for h in logger.handlers):
        logger.addHandler(logging.StreamHandler())
