"""The classifier's recipe on the training engine (`cxrkit.fit.engine`): batches of films
or CNN codes, its loss, and validation by macro ROC AUC (the early-stopping criterion)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from cxrkit.fit import distributed
from cxrkit.fit.checkpoint import RunCheckpoints
from cxrkit.fit.engine import (
    FitResult,
    Plan,
    Recipe,
    Validation,
    freeze_frozen_batchnorm,
    run_steps,
)
from cxrkit.fit.engine import fit as run_engine
from cxrkit.fit.precision import Precision, resolve_precision
from cxrkit.fit.schedule import schedule_from_config
from cxrkit.models.inference import logits_to_probs
from cxrkit.train.config import TrainConfig
from cxrkit.train.optim import build_optimizer

__all__ = ["ClassifierRecipe", "FitResult", "fit", "freeze_frozen_batchnorm", "validation_score"]


def validation_score(y_true: np.ndarray, probs: np.ndarray, task: str) -> float:
    """Macro ROC AUC on validation (the early-stopping criterion); falls back to accuracy."""
    from sklearn.metrics import roc_auc_score

    try:
        if task == "binary":
            return float(roc_auc_score(y_true, probs[:, 1]))
        if task == "multiclass":
            return float(roc_auc_score(y_true, probs, multi_class="ovr", average="macro"))
        aucs = []  # per finding over its known (non-NaN) entries, uncertain ones left out
        for c in range(y_true.shape[1]):
            known = ~np.isnan(y_true[:, c])
            if 0 < y_true[known, c].sum() < known.sum():
                aucs.append(roc_auc_score(y_true[known, c], probs[known, c]))
        if not aucs:
            raise ValueError("no finding with both classes")
        return float(np.mean(aucs))
    except ValueError:
        if task == "multilabel":
            known = ~np.isnan(y_true)
            return float(((probs >= 0.5) == y_true)[known].mean()) if known.any() else 0.0
        return float((probs.argmax(1) == y_true).mean())


class ClassifierRecipe(Recipe):
    """Dict batches (`image`, `target`) of films or codes; validation loss and AUC."""

    score_name = "val AUC"

    def __init__(
        self,
        module: nn.Module,
        train_batches: Callable[[int], Iterable[Any]],
        val_batches: Callable[[], Iterable[Any]],
        loss_fn: nn.Module,
        task: str,
        device: torch.device,
        amp: Precision,
    ) -> None:
        self.module, self._train, self._val = module, train_batches, val_batches
        self.loss_fn, self.task, self.device, self.amp = loss_fn, task, device, amp

    def train_batches(self, round_: int) -> Iterable[Any]:
        """The epoch's batches (its shuffle seeded by the epoch number)."""
        return self._train(round_)

    def loss(self, module: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The loss function on the module's logits."""
        x, y = _to_device(batch, self.device)
        return self.loss_fn(module(x), y)

    def validate(self, module: nn.Module) -> Validation:
        """Validation loss and macro AUC over every rank's share."""
        val_loss, y_true, probs = _gather_validation(
            *_validate(module, self._val(), self.loss_fn, self.task, self.device, self.amp)
        )
        score = validation_score(y_true, probs, self.task) if len(y_true) else float("nan")
        return Validation(
            score,
            {"val_loss": val_loss, "val_auc": score},
            f"val_loss {val_loss:.4f} val_auc {score:.4f}",
        )


def fit(
    module: nn.Module,
    train_batches: Callable[[int], Any],
    val_batches: Callable[[], Any],
    loss_fn: nn.Module,
    task: str,
    cfg: TrainConfig,
    ckpt_dir: Path,
    device: torch.device,
    resume: bool = False,
    show_progress: bool = True,
) -> FitResult:
    """Train `module` for cfg.epochs with early stopping on validation AUC.

    `train_batches(epoch)` returns an iterable of dicts with `image` (the module input) and
    `target`; `val_batches()` the same for validation. `last.pt` is written after every
    epoch and `best.pt` whenever validation improves; with `resume=True` training
    continues after the last completed epoch (a kill mid-epoch repeats that epoch, whose
    shuffle is seeded by its number). On return `module` holds the best weights.

    The rate follows `cfg.scheduler` once an epoch; each optimizer step takes
    `cfg.accumulate` micro-batches under `cfg.precision`'s autocast. Distributed runs:
    see `cxrkit.fit.engine`.
    """
    module.to(device)
    loss_fn.to(device)
    amp = resolve_precision(cfg.precision, device)
    recipe = ClassifierRecipe(module, train_batches, val_batches, loss_fn, task, device, amp)
    plan = Plan(
        rounds=cfg.epochs,
        schedule=schedule_from_config(cfg),
        patience=cfg.early_stopping_patience,
        accumulate=cfg.accumulate,
        precision=cfg.precision,
        seed=cfg.seed,
    )
    return run_engine(
        recipe,
        build_optimizer(module.parameters(), cfg),
        plan,
        device=device,
        checkpoints=RunCheckpoints(ckpt_dir),
        resume=resume,
        show_progress=show_progress,
    )


def _train_one_epoch(
    module, batches, loss_fn, optimizer, scaler, device, amp: Precision, accumulate: int = 1
) -> tuple[float, int]:
    """One pass of the classifier's steps; returns (summed loss, films) of this rank."""
    module.train()
    freeze_frozen_batchnorm(module)
    recipe = ClassifierRecipe(module, lambda _: batches, list, loss_fn, "", device, amp)
    return run_steps(
        module, batches, recipe.loss, recipe.examples, optimizer, scaler, amp, accumulate
    )


def _gather_validation(val_loss, y_true, probs):
    """Each rank validated its share: the loss and outputs of all of them, exactly."""
    if not distributed.current().active:
        return val_loss, y_true, probs
    n = len(y_true)
    total, count = distributed.all_reduce_sum([val_loss * n if n else 0.0, n])
    probs, y_true = distributed.gather_rows(probs, y_true)
    return (total / count if count else float("nan")), y_true, probs


def _to_device(batch, device):
    x = batch["image"].to(device, non_blocking=True)
    y = batch["target"].to(device, non_blocking=True)
    if x.dim() == 4 and device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


@torch.inference_mode()
def _validate(module, batches, loss_fn, task, device, amp: Precision):
    module.eval()
    total, count, ys, ps = 0.0, 0, [], []
    for batch in batches:
        if batch is None:
            continue
        x, y = _to_device(batch, device)
        with amp.autocast():
            logits = module(x)
        logits = logits.float()
        total += float(loss_fn(logits, y)) * len(y)
        count += len(y)
        ys.append(y.cpu().numpy())
        ps.append(logits_to_probs(logits, task).cpu().numpy())
    if not ys:
        return float("nan"), np.zeros(0), np.zeros((0, 0))
    return total / count, np.concatenate(ys), np.concatenate(ps)
