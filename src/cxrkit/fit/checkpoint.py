"""Atomic training checkpoints (`last.pt`, `best.pt`) that resume after a kill.

`last.pt` is written after every completed round (epoch) and alone says which rounds are
done; `best.pt` holds the best weights so far and is written after it whenever validation
improves. A kill between the two writes leaves `best.pt` one best behind: then `last.pt`'s
own (scored) weights are the best ones (`RunCheckpoints.best_weights`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cxrkit.errors import CxrkitError
from cxrkit.io.atomic import atomic_write, remove_temps

LAST_NAME, BEST_NAME = "last.pt", "best.pt"


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Write `state` to a temp file beside `path`, then rename: a kill never leaves half a file."""
    return atomic_write(path, lambda fh: torch.save(state, fh))


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load a checkpoint with `weights_only=True` (tensors and plain containers only)."""
    path = Path(path)
    if not path.is_file():
        raise CxrkitError(f"{path}: no checkpoint to resume from")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CxrkitError(f"{path}: unreadable checkpoint ({exc})") from exc


def refuse_fresh_start(folder: Path, resume: bool, finished: bool = False) -> None:
    """A fresh run (no `resume`) over an unfinished run's `last.pt` would throw its rounds
    away: refused, with how to go on. `finished`: the run's result is already written."""
    last = Path(folder) / LAST_NAME
    if not resume and not finished and last.is_file():
        raise CxrkitError(
            f"{folder} holds an unfinished run ({last}): pass resume=True to continue it, "
            f"or delete {last} (or choose another output folder) to start afresh"
        )


class RunCheckpoints:
    """The `last.pt` / `best.pt` pair of a run folder.

    `options` (the run's learning options, JSON friendly) are saved with every `last.pt`;
    a resume with other options is refused. None: not checked.
    """

    def __init__(self, folder: str | Path, options: dict[str, Any] | None = None) -> None:
        self.folder = Path(folder)
        self.last, self.best = self.folder / LAST_NAME, self.folder / BEST_NAME
        self.options = None if options is None else json.dumps(options, sort_keys=True)

    def clear(self) -> None:
        """Remove both files: a fresh run never picks up older checkpoints."""
        for path in (self.last, self.best):
            path.unlink(missing_ok=True)
        self.remove_temps()

    def remove_temps(self) -> None:
        """Remove the temps of a write cut short by a kill."""
        for path in (self.last, self.best):
            remove_temps(path)

    def save(self, state: dict[str, Any], best: dict[str, Any] | None) -> None:
        """`last.pt` first, then (when `best` is given) `best.pt` = {module, epoch, score}."""
        if self.options is not None:
            state = {**state, "options": self.options}
        self.folder.mkdir(parents=True, exist_ok=True)
        save_checkpoint(self.last, state)
        if best is not None:
            save_checkpoint(self.best, best)

    def load(self) -> dict[str, Any]:
        """`last.pt`, refused when it was saved with other learning options."""
        state = load_checkpoint(self.last)
        if self.options is not None and state.get("options") != self.options:
            then = json.loads(state.get("options") or "{}")
            now = json.loads(self.options)
            changed = sorted(k for k in then.keys() | now.keys() if then.get(k) != now.get(k))
            raise CxrkitError(
                f"{self.last}: the run was started with other options ({', '.join(changed)}); "
                "resume with the same options, or start a fresh run in another output folder"
            )
        return state

    def best_weights(self, state: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The best weights so far, consistent with `last.pt` whatever moment the kill came."""
        if state["best_epoch"] == state["epoch"] or state["best_epoch"] < 1:
            return scored_weights(state)  # the last round was the best, or none has scored
        best = load_checkpoint(self.best)
        if best.get("epoch") != state["best_epoch"]:
            raise CxrkitError(
                f"{self.best} holds epoch {best.get('epoch')} but {self.last} says the best "
                f"epoch is {state['best_epoch']}: the checkpoints do not belong together; "
                "start a fresh run (without resume=True) or restore them"
            )
        return best["module"]


def scored_weights(state: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The weights a `last.pt` was validated with: its weight average's, else its module's."""
    ema = state.get("ema") or {}
    if not ema:
        return state["module"]
    return {k.removeprefix("module."): v for k, v in ema.items() if k.startswith("module.")}
