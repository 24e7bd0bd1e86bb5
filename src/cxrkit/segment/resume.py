"""A lung training run's state after each epoch (`last.pt`), so a killed run resumes.

The state holds the weights, optimizer, weight average, best epoch so far, history, random
streams and the time spent training (the `max_minutes` budget counts across restarts).
It is written atomically (`cxrkit.train.checkpoint`) and read with `weights_only=True`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cxrkit.errors import CxrkitError
from cxrkit.io.atomic import remove_temps
from cxrkit.train.checkpoint import load_checkpoint, save_checkpoint

STATE_NAME = "last.pt"
# Options that may change between a run and its resume: they do not change what is learnt.
FREE_OPTIONS = ("threads",)


@dataclass
class RunState:
    """Where a lung training run stands after its last completed epoch."""

    epoch: int
    step: int
    elapsed: float  # seconds spent in the epoch loop so far
    best_dice: float
    best_epoch: int
    best_weights: dict[str, torch.Tensor]
    history: list[dict[str, Any]]
    stopped: bool  # early stop or time budget reached: only the finishing steps remain


def state_path(out_dir: str | Path) -> Path:
    """`<run folder>/last.pt`."""
    return Path(out_dir) / STATE_NAME


def clear_state(out_dir: str | Path) -> None:
    """Remove a run folder's state (and temps of a write cut short): a fresh run never
    picks up an older run's epochs."""
    path = state_path(out_dir)
    path.unlink(missing_ok=True)
    remove_temps(path)


def save_state(
    out_dir: str | Path,
    state: RunState,
    config: dict[str, Any],
    modules: dict[str, Any],
    generator: torch.Generator,
) -> Path:
    """Write the state; `modules` maps names ('net', 'optimizer', 'ema') to objects with
    `state_dict()` (None entries are skipped)."""
    payload = {
        "epoch": state.epoch,
        "step": state.step,
        "elapsed": state.elapsed,
        "best_dice": state.best_dice,
        "best_epoch": state.best_epoch,
        "best_weights": state.best_weights,
        "history": state.history,
        "stopped": state.stopped,
        "config": json.dumps(_learning_options(config), sort_keys=True),
        "generator": generator.get_state(),
        "torch_rng": torch.get_rng_state(),
        "modules": {k: m.state_dict() for k, m in modules.items() if m is not None},
    }
    return save_checkpoint(state_path(out_dir), payload)


def load_state(
    out_dir: str | Path,
    config: dict[str, Any],
    modules: dict[str, Any],
    generator: torch.Generator,
) -> RunState:
    """Restore `modules` and the random streams from the run folder's state; the run's
    options must be those it was started with (except `FREE_OPTIONS`)."""
    path = state_path(out_dir)
    saved = load_checkpoint(path)
    then = json.loads(saved["config"])
    now = json.loads(json.dumps(_learning_options(config), sort_keys=True))  # tuples -> lists
    changed = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
    if changed:
        raise CxrkitError(
            f"{path}: the run was started with other options ({', '.join(changed)}); resume "
            "with the same options, or start a fresh run in another output folder"
        )
    for name, module in modules.items():
        if module is not None:
            try:
                module.load_state_dict(saved["modules"][name])
            except (KeyError, RuntimeError, ValueError) as exc:
                raise CxrkitError(f"{path}: {name} does not fit this run ({exc})") from exc
    generator.set_state(saved["generator"])
    torch.set_rng_state(saved["torch_rng"])
    return RunState(
        epoch=int(saved["epoch"]),
        step=int(saved["step"]),
        elapsed=float(saved["elapsed"]),
        best_dice=float(saved["best_dice"]),
        best_epoch=int(saved["best_epoch"]),
        best_weights=saved["best_weights"],
        history=list(saved["history"]),
        stopped=bool(saved["stopped"]),
    )


def _learning_options(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if k not in FREE_OPTIONS}
