"""The epoch loop shared by both training modes: train, validate, checkpoint, stop early, resume."""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from cxrkit.errors import CxrkitError
from cxrkit.io.atomic import remove_temps
from cxrkit.models.inference import logits_to_probs
from cxrkit.train import distributed
from cxrkit.train.checkpoint import load_checkpoint, save_checkpoint
from cxrkit.train.config import TrainConfig
from cxrkit.train.optim import build_optimizer, build_scheduler
from cxrkit.train.precision import Precision, resolve_precision

log = logging.getLogger("cxrkit.train")


@dataclass
class FitResult:
    """What the loop learned: per-epoch history and where the best weights came from."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf
    stopped_early: bool = False


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

    In a distributed run (`cxrkit.train.distributed`) each rank's batches are its share:
    `module` trains inside DistributedDataParallel, the loss and validation outputs are
    gathered over ranks, and rank 0 alone writes checkpoints. Each optimizer step takes
    `cfg.accumulate` micro-batches under `cfg.precision`'s autocast.
    """
    ctx = distributed.current()
    module.to(device)
    loss_fn.to(device)
    train_module = distributed.wrap_ddp(module, device)
    amp = resolve_precision(cfg.precision, device)
    optimizer = build_optimizer(module.parameters(), cfg)
    scheduler = build_scheduler(optimizer, cfg)
    result = FitResult()
    bad_epochs = 0
    start_epoch = 1
    last_path, best_path = ckpt_dir / "last.pt", ckpt_dir / "best.pt"
    scaler = torch.amp.GradScaler(device.type, enabled=amp.scaler)
    best_state = copy.deepcopy(module.state_dict())
    if not resume and ctx.is_main:  # a fresh run must never pick up older checkpoints
        for stale in (last_path, best_path):
            stale.unlink(missing_ok=True)
    for path in (last_path, best_path):  # temps left by a kill during a checkpoint write
        if ctx.is_main:
            remove_temps(path)
    if resume and last_path.is_file():
        state = load_checkpoint(last_path)
        try:
            module.load_state_dict(state["module"])
            optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise CxrkitError(
                f"{last_path} does not fit this model and config ({str(exc).splitlines()[0]}); "
                "resume with the run's own config.yaml, or start a fresh run"
            ) from exc
        if scheduler is not None and state.get("scheduler"):
            scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        _set_rng_state(state)
        distributed.seed_rank(cfg.seed + state["epoch"])  # ranks > 0: their own streams
        result.history = list(state["history"])
        result.best_epoch, result.best_score = state["best_epoch"], state["best_score"]
        bad_epochs = state["bad_epochs"]
        start_epoch = state["epoch"] + 1
        best_state = _resume_best_state(state, best_path)
        log.info("resumed from %s after epoch %d", last_path, state["epoch"])
        if state.get("stopped_early"):
            result.stopped_early = True
            start_epoch = cfg.epochs + 1
    elif resume:
        log.info("no checkpoint in %s: starting from epoch 1", ckpt_dir)

    with _progress(show_progress and ctx.is_main) as progress:
        task_id = progress.add_task("train", total=cfg.epochs, completed=start_epoch - 1, info="")
        for epoch in range(start_epoch, cfg.epochs + 1):
            t0 = time.time()
            total, count = _train_one_epoch(
                train_module,
                train_batches(epoch),
                loss_fn,
                optimizer,
                scaler,
                device,
                amp,
                cfg.accumulate,
            )
            total, count = distributed.all_reduce_sum([total, count])
            train_loss = total / max(count, 1)
            val_loss, y_true, probs = _gather_validation(
                *_validate(module, val_batches(), loss_fn, task, device, amp)
            )
            score = validation_score(y_true, probs, task) if len(y_true) else float("nan")
            lr = optimizer.param_groups[0]["lr"]
            if scheduler is not None:
                scheduler.step()
            row = {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_auc": score,
                "lr": lr,
                "seconds": time.time() - t0,
            }
            result.history.append(row)
            improved = score > result.best_score
            if improved:
                result.best_score, result.best_epoch, bad_epochs = score, epoch, 0
                best_state = copy.deepcopy(module.state_dict())
            else:
                bad_epochs += 1
            stop = bad_epochs >= cfg.early_stopping_patience
            # last.pt first: it alone says which epochs are done. A kill between the two
            # writes leaves best.pt one best behind, and then last.pt's own weights are the
            # best ones (see _resume_best_state).
            state = {
                "module": module.state_dict(),
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else {},
                "scaler": scaler.state_dict() if scaler.is_enabled() else {},
                "torch_rng": torch.get_rng_state(),
                "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                "history": result.history,
                "epoch": epoch,
                "best_epoch": result.best_epoch,
                "best_score": result.best_score,
                "bad_epochs": bad_epochs,
                "stopped_early": stop,
            }
            if ctx.is_main:  # the state is the same on every rank (DDP keeps them in step)
                _save_epoch(last_path, best_path, improved, best_state, epoch, score, state)
            log.info(
                "epoch %d/%d train_loss %.4f val_loss %.4f val_auc %.4f lr %.2e (%.1fs)%s",
                epoch,
                cfg.epochs,
                train_loss,
                val_loss,
                score,
                lr,
                row["seconds"],
                " *" if improved else "",
            )
            progress.update(
                task_id,
                advance=1,
                info=f"loss {train_loss:.4f}  val AUC {score:.4f}  best {result.best_score:.4f}",
            )
            if stop:
                result.stopped_early = True
                log.info("early stop: no val AUC gain for %d epochs", bad_epochs)
                break
    if result.best_epoch >= 1:  # else no epoch scored (NaN AUC): keep the last weights
        module.load_state_dict(best_state)
    return result


def _save_epoch(last_path, best_path, improved, best_state, epoch, score, state) -> None:
    """`last.pt` first: it alone says which epochs are done (see `_resume_best_state`)."""
    save_checkpoint(last_path, state)
    if improved:
        save_checkpoint(best_path, {"module": best_state, "epoch": epoch, "score": score})


def _gather_validation(val_loss, y_true, probs):
    """Each rank validated its share: the loss and outputs of all of them, exactly."""
    if not distributed.current().active:
        return val_loss, y_true, probs
    n = len(y_true)
    total, count = distributed.all_reduce_sum([val_loss * n if n else 0.0, n])
    probs, y_true = distributed.gather_rows(probs, y_true)
    return (total / count if count else float("nan")), y_true, probs


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch_rng"])
    cuda_states = state.get("cuda_rng") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)


def _resume_best_state(state: dict[str, Any], best_path: Path) -> dict[str, torch.Tensor]:
    """The best weights so far, consistent with `last.pt` whatever moment the kill came."""
    if state["best_epoch"] == state["epoch"]:
        return state["module"]  # the last completed epoch was the best one
    if state["best_epoch"] < 1:
        return state["module"]  # no epoch has scored yet (validation gave NaN throughout)
    best = load_checkpoint(best_path)
    if best.get("epoch") != state["best_epoch"]:
        raise CxrkitError(
            f"{best_path} holds epoch {best.get('epoch')} but {best_path.parent / 'last.pt'} "
            f"says the best epoch is {state['best_epoch']}: the checkpoints do not belong "
            "together; start a fresh run (without resume=True) or restore them"
        )
    return best["module"]


def freeze_frozen_batchnorm(module: nn.Module) -> None:
    """Put BatchNorm layers whose parameters are all frozen in eval mode.

    A frozen block (finetune with `finetune_blocks`) keeps its running statistics too,
    as in Keras transfer learning; otherwise every training batch would shift them.
    """
    for m in module.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()


def _micro_groups(batches, accumulate: int):
    """Consecutive micro-batches in groups of `accumulate`: one optimizer step each."""
    group: list = []
    for batch in batches:
        group.append(batch)
        if len(group) == accumulate:
            yield group
            group = []
    if group:
        yield group


def _to_device(batch, device):
    x = batch["image"].to(device, non_blocking=True)
    y = batch["target"].to(device, non_blocking=True)
    if x.dim() == 4 and device.type == "cuda":
        x = x.contiguous(memory_format=torch.channels_last)
    return x, y


def _train_one_epoch(
    module, batches, loss_fn, optimizer, scaler, device, amp: Precision, accumulate: int = 1
) -> tuple[float, int]:
    """One pass; returns (summed loss, films) of this rank.

    Each group of `accumulate` micro-batches is one optimizer step whose gradient is the
    mean over the group's films (each micro-batch's mean loss weighted by its share);
    under DDP only the group's last backward all-reduces.
    """
    module.train()
    freeze_frozen_batchnorm(module)
    total, count = 0.0, 0
    for group in _micro_groups(batches, accumulate):
        kept = [b for b in group if b is not None]
        if not kept:
            if distributed.current().active:  # the other ranks wait in this step's all-reduce
                raise CxrkitError("every film of a training step was unreadable on this rank")
            continue
        n_step = sum(len(b["target"]) for b in kept)
        optimizer.zero_grad(set_to_none=True)
        for k, batch in enumerate(kept):
            x, y = _to_device(batch, device)
            with distributed.no_sync(module, sync=k == len(kept) - 1), amp.autocast():
                loss = loss_fn(module(x), y)
            scaler.scale(loss * (len(y) / n_step)).backward()
            total += float(loss.detach()) * len(y)
            count += len(y)
        scaler.step(optimizer)
        scaler.update()
    return total, count


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


def _progress(enabled: bool) -> Progress:
    return Progress(
        TextColumn("[bold]epoch {task.completed}/{task.total}"),
        BarColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        disable=not enabled,
        transient=False,
    )
