"""The one fit loop of every trainer: rounds of optimizer steps, validation, best weights,
early stopping, weight averaging, checkpoints, resume, progress and logging.

A trainer is a `Recipe`: the module, its training batches, its loss and its validation.
A `Plan` says how long and how fast: rounds (epochs, or validation intervals of a fixed
number of steps), the learning-rate `Schedule` (once a round, or every step over
`total_steps`), a time budget, patience, weight averaging, gradient accumulation and
mixed precision. `fit` runs it; with a checkpoint folder every completed round is saved
(`cxrkit.fit.checkpoint`) and `resume=True` continues after the last one.

In a distributed run (`cxrkit.fit.distributed`) each rank's batches are its share: the
module trains inside DistributedDataParallel, the training loss is summed over ranks, the
recipe's validation gathers its outputs, and rank 0 alone writes checkpoints.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from torch import nn

from cxrkit.errors import CxrkitError
from cxrkit.fit import distributed
from cxrkit.fit.checkpoint import RunCheckpoints
from cxrkit.fit.precision import Precision, resolve_precision
from cxrkit.fit.schedule import Schedule, set_rate
from cxrkit.progress import progress_lines

log = logging.getLogger("cxrkit.train")


@dataclass
class Validation:
    """One validation pass: the score to maximise, the history metrics, a log text."""

    score: float
    metrics: dict[str, float] = field(default_factory=dict)
    text: str = ""


class Recipe:
    """What a trainer supplies to the engine (override what it needs).

    Attributes:
        module: the trained module (its weights end as the best validated ones).
        loss_key: the history name of the mean training loss of a round.
        score_name: what the validation score is, for the log.
    """

    module: nn.Module
    loss_key = "train_loss"
    score_name = "val score"

    def train_batches(self, round_: int) -> Iterable[Any]:
        """The batches of round `round_` (1-based); with `Plan.steps_per_round` the same
        endless iterator may be returned every round."""
        raise NotImplementedError

    def loss(self, module: nn.Module, batch: Any) -> torch.Tensor:
        """The mean loss of `module` (possibly DDP-wrapped) on `batch`."""
        raise NotImplementedError

    def examples(self, batch: Any) -> int:
        """How many examples `batch` holds (its `target`, or its first tensor)."""
        return len(batch["target"] if isinstance(batch, dict) else batch[0])

    def validate(self, module: nn.Module) -> Validation | None:
        """Score `module` (the weight average when one is kept); None: no validation
        (the last weights are kept)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """The recipe's own state to checkpoint (e.g. its random generator)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what `state_dict` gave."""


@dataclass(frozen=True)
class Plan:
    """How long and how fast the engine trains.

    Attributes:
        rounds: rounds at most (epochs, or validation intervals).
        schedule: the learning-rate factor over the run.
        total_steps: None: the rate changes once a round, over `rounds`; else every
            optimizer step, over this many steps, and the run ends after them.
        steps_per_round: None: a round is one pass over its batches; else this many steps.
        max_seconds: time budget: the schedule runs over the steps or the time, whichever
            ends first, and the run ends when the time is up.
        patience: stop after this many rounds without a better score (None: never).
        ties_improve: a score equal to the best counts as better (later weights win).
        ema_decay: exponential moving average of the weights per step (None: off);
            validation and the best weights then use the average.
        accumulate: micro-batches per optimizer step.
        precision: autocast precision (`cxrkit.fit.precision`).
        seed: the run's seed (ranks > 0 reseed from it on resume).
    """

    rounds: int
    schedule: Schedule = Schedule("constant")
    total_steps: int | None = None
    steps_per_round: int | None = None
    max_seconds: float | None = None
    patience: int | None = None
    ties_improve: bool = False
    ema_decay: float | None = None
    accumulate: int = 1
    precision: str = "fp32"
    seed: int = 0


@dataclass
class FitResult:
    """What the engine learned: per-round history and where the best weights came from."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int = 0
    best_score: float = -math.inf
    best_step: int = 0
    stopped_early: bool = False
    steps: int = 0
    resumed_after: int | None = None


def weight_average(module: nn.Module, decay: float | None) -> nn.Module | None:
    """An EMA copy of `module` (weights and BatchNorm statistics), or None without a decay."""
    if decay is None:
        return None
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    return AveragedModel(module, multi_avg_fn=get_ema_multi_avg_fn(decay), use_buffers=True)


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


def run_steps(
    module: nn.Module,
    batches: Iterable[Any],
    loss: Callable[[nn.Module, Any], torch.Tensor],
    examples: Callable[[Any], int],
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    amp: Precision,
    accumulate: int = 1,
    before_step: Callable[[], None] | None = None,
    after_step: Callable[[], bool] | None = None,
) -> tuple[float, int]:
    """Optimizer steps over `batches`; returns (summed loss, examples) of this rank.

    Each group of `accumulate` micro-batches is one step whose gradient is the mean over
    the group's examples (each micro-batch's mean loss weighted by its share); under DDP
    only the group's last backward all-reduces. A None batch (unreadable films) is
    skipped. `before_step()` runs before each step (the rate), `after_step()` after it;
    True from it ends the pass.
    """
    total, count = 0.0, 0
    for group in _micro_groups(batches, accumulate):
        kept = [b for b in group if b is not None]
        if not kept:
            if distributed.current().active:  # the other ranks wait in this step's all-reduce
                raise CxrkitError("every film of a training step was unreadable on this rank")
            continue
        if before_step is not None:
            before_step()
        n_step = sum(examples(b) for b in kept)
        optimizer.zero_grad(set_to_none=True)
        for k, batch in enumerate(kept):
            n = examples(batch)
            with distributed.no_sync(module, sync=k == len(kept) - 1), amp.autocast():
                value = loss(module, batch)
            scaler.scale(value * (n / n_step)).backward()
            total += float(value.detach()) * n
            count += n
        scaler.step(optimizer)
        scaler.update()
        if after_step is not None and after_step():
            break
    return total, count


def _micro_groups(batches: Iterable[Any], accumulate: int) -> Iterator[list[Any]]:
    """Consecutive micro-batches in groups of `accumulate`: one optimizer step each."""
    group: list[Any] = []
    for batch in batches:
        group.append(batch)
        if len(group) == accumulate:
            yield group
            group = []
    if group:
        yield group


def fit(
    recipe: Recipe,
    optimizer: torch.optim.Optimizer,
    plan: Plan,
    *,
    device: torch.device | None = None,
    checkpoints: RunCheckpoints | None = None,
    resume: bool = False,
    show_progress: bool = False,
) -> FitResult:
    """Train `recipe.module` by `plan`; on return it holds the best validated weights
    (the last ones when the recipe does not validate).

    With `checkpoints`, `last.pt` is written after every round and `best.pt` whenever
    validation improves; a fresh run (`resume=False`) first removes older ones. With
    `resume=True` training continues after the last completed round with the saved
    weights, optimizer, weight average, random streams, step count and time spent (a kill
    mid-round repeats that round).
    """
    device = device or torch.device("cpu")
    ctx = distributed.current()
    module = recipe.module
    train_module = distributed.wrap_ddp(module, device)
    amp = resolve_precision(plan.precision, device)
    scaler = torch.amp.GradScaler(device.type, enabled=amp.scaler)
    ema = weight_average(module, plan.ema_decay)
    scored = ema.module if ema is not None else module
    peaks = [group["lr"] for group in optimizer.param_groups]
    result = FitResult()
    bad, start, elapsed = 0, 1, 0.0
    best_state = copy.deepcopy(scored.state_dict())
    if checkpoints is not None:
        if ctx.is_main:
            if not resume:  # a fresh run must never pick up older checkpoints
                checkpoints.clear()
            checkpoints.remove_temps()  # temps left by a kill during a checkpoint write
        if resume and checkpoints.last.is_file():
            state = checkpoints.load()
            _restore(state, checkpoints.last, module, optimizer, scaler, ema, recipe)
            distributed.seed_rank(plan.seed + state["epoch"])  # ranks > 0: their own streams
            result.history = list(state["history"])
            result.best_epoch, result.best_score = state["best_epoch"], state["best_score"]
            result.best_step, result.steps = state.get("best_step", 0), state.get("step", 0)
            result.resumed_after = state["epoch"]
            bad, start, elapsed = state["bad_epochs"], state["epoch"] + 1, state.get("elapsed", 0.0)
            best_state = checkpoints.best_weights(state)
            log.info("resumed from %s after epoch %d", checkpoints.last, state["epoch"])
            if state.get("stopped_early"):
                result.stopped_early, start = True, plan.rounds + 1
        elif resume:
            log.info("no checkpoint in %s: starting from epoch 1", checkpoints.folder)

    t_start = time.time() - elapsed  # the time budget counts across restarts
    per_step = plan.total_steps is not None

    def time_share() -> float:
        return (time.time() - t_start) / plan.max_seconds if plan.max_seconds else 0.0

    def finished() -> bool:
        return (per_step and result.steps >= plan.total_steps) or time_share() >= 1.0

    def before_step() -> None:
        if per_step:
            factor = plan.schedule.factor(result.steps, plan.total_steps, time_share())
            set_rate(optimizer, peaks, factor)

    taken = [0]

    def after_step() -> bool:
        result.steps += 1
        taken[0] += 1
        if ema is not None:
            ema.update_parameters(module)
        return finished() or taken[0] == plan.steps_per_round

    with _progress(show_progress and ctx.is_main) as progress:
        task_id = progress.add_task("train", total=plan.rounds, completed=start - 1, info="")
        for round_ in range(start, plan.rounds + 1):
            t0, taken[0] = time.time(), 0
            if not per_step:
                set_rate(optimizer, peaks, plan.schedule.factor(round_ - 1, plan.rounds))
            module.train()
            freeze_frozen_batchnorm(module)
            total, count = run_steps(
                train_module,
                progress_lines(  # a log's timestamped lines within a round (no second bar)
                    recipe.train_batches(round_),
                    plan.steps_per_round * plan.accumulate if plan.steps_per_round else None,
                    what=f"{'round' if plan.steps_per_round else 'epoch'} {round_}/{plan.rounds}",
                    unit="batches",
                    enabled=show_progress and ctx.is_main,
                    bar=False,
                ),
                recipe.loss,
                recipe.examples,
                optimizer,
                scaler,
                amp,
                plan.accumulate,
                before_step,
                after_step,
            )
            total, count = distributed.all_reduce_sum([total, count])
            val = recipe.validate(scored)
            lr = optimizer.param_groups[0]["lr"]
            row = {
                "epoch": round_,
                recipe.loss_key: total / max(count, 1),
                **(val.metrics if val is not None else {}),
                "lr": lr,
                "seconds": time.time() - t0,
            }
            result.history.append(row)
            improved = val is not None and (
                val.score > result.best_score
                or (plan.ties_improve and val.score >= result.best_score)
            )
            if improved:
                result.best_score, result.best_epoch, bad = val.score, round_, 0
                result.best_step = result.steps
                best_state = copy.deepcopy(scored.state_dict())
            elif val is not None:
                bad += 1
            early = plan.patience is not None and bad >= plan.patience
            stop = early or finished()
            score = val.score if val is not None else float("nan")
            if checkpoints is not None and ctx.is_main:  # DDP keeps the ranks in step
                state = {
                    **_parts_state(module, optimizer, scaler, ema, recipe, device),
                    "history": result.history,
                    "epoch": round_,
                    "step": result.steps,
                    "elapsed": time.time() - t_start,
                    "best_epoch": result.best_epoch,
                    "best_score": result.best_score,
                    "best_step": result.best_step,
                    "bad_epochs": bad,
                    "stopped_early": stop,
                }
                best = {"module": best_state, "epoch": round_, "score": score} if improved else None
                checkpoints.save(state, best)
            _log_round(plan, recipe, result, row, val, improved)
            progress.update(
                task_id,
                advance=1,
                info=f"loss {row[recipe.loss_key]:.4f}  {recipe.score_name} {score:.4f}  "
                f"best {result.best_score:.4f}",
            )
            if stop:
                result.stopped_early = True
                if early:
                    log.info("early stop: no %s gain for %d rounds", recipe.score_name, bad)
                elif time_share() >= 1.0:
                    log.info("time budget of %.1f min reached", plan.max_seconds / 60)
                break
    if result.best_epoch >= 1:  # else no round scored (NaN or no validation): last weights
        module.load_state_dict(best_state)
    return result


def _parts_state(module, optimizer, scaler, ema, recipe: Recipe, device) -> dict[str, Any]:
    """What `_restore` loads back: weights, optimizer, scaler, average, random streams."""
    return {
        "module": module.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scaler": scaler.state_dict() if scaler.is_enabled() else {},
        "ema": ema.state_dict() if ema is not None else {},
        "recipe": recipe.state_dict(),
        "torch_rng": torch.get_rng_state(),
        "cuda_rng": torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
    }


def _log_round(
    plan: Plan,
    recipe: Recipe,
    result: FitResult,
    row: dict[str, float],
    val: Validation | None,
    improved: bool,
) -> None:
    """One log line a round: where the run is, the loss, validation, rate, time."""
    if plan.steps_per_round:
        where = f"step {result.steps}/{plan.total_steps}"
    else:
        where = f"epoch {row['epoch']}/{plan.rounds}"
    log.info(
        "%s %s %.4f%s lr %.2e (%.1fs)%s",
        where,
        recipe.loss_key,
        row[recipe.loss_key],
        f" {val.text}" if val is not None and val.text else "",
        row["lr"],
        row["seconds"],
        " *" if improved else "",
    )


def _restore(state, path: Path, module, optimizer, scaler, ema, recipe: Recipe) -> None:
    """Load a `last.pt` into the run's parts and random streams."""
    try:
        module.load_state_dict(state["module"])
        optimizer.load_state_dict(state["optimizer"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise CxrkitError(
            f"{path} does not fit this model and config ({str(exc).splitlines()[0]}); "
            "resume with the run's own config (config.yaml), or start a fresh run"
        ) from exc
    if state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    recipe.load_state_dict(state.get("recipe") or {})
    torch.set_rng_state(state["torch_rng"])
    cuda_states = state.get("cuda_rng") or []
    if cuda_states and torch.cuda.is_available() and len(cuda_states) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda_states)


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
