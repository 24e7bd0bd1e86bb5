"""Where a lung training run keeps its state: `<run folder>/last.pt` (and `best.pt`).

The training engine (`cxrkit.fit.engine`) writes them after each epoch, atomically:
the weights, optimizer, weight average, best epoch so far, history, random streams and
the time spent training (the `max_minutes` budget counts across restarts), with the run's
learning options, so that a killed run resumes only with the options it started with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cxrkit.fit.checkpoint import LAST_NAME, RunCheckpoints

STATE_NAME = LAST_NAME
# Options that may change between a run and its resume: they do not change what is learnt.
FREE_OPTIONS = ("threads",)


def state_path(out_dir: str | Path) -> Path:
    """`<run folder>/last.pt`."""
    return Path(out_dir) / STATE_NAME


def clear_state(out_dir: str | Path) -> None:
    """Remove a run folder's state (and temps of a write cut short): a fresh run never
    picks up an older run's epochs."""
    RunCheckpoints(out_dir).clear()


def learning_options(config: dict[str, Any]) -> dict[str, Any]:
    """The options a resume must repeat: all but `FREE_OPTIONS`."""
    return {k: v for k, v in config.items() if k not in FREE_OPTIONS}
