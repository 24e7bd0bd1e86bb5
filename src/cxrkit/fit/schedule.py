"""The one learning-rate schedule of every trainer: warm-up + cosine, step decay or constant.

A schedule gives the rate as a share of the peak for the next unit of training (an epoch
or an optimizer step), from the units done, the units planned and, under a time budget,
the share of the budget spent: the run's progress is whichever is further along, so a run
cut by the clock still ends at a low rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from cxrkit.errors import CxrkitError

KINDS = ("cosine", "step", "constant")


@dataclass(frozen=True)
class Schedule:
    """A rate factor over the run.

    Attributes:
        kind: `cosine` (linear warm-up, then cosine decay to `floor`), `step` (times
            `gamma` every `step_size` units) or `constant`.
        warmup: share of the run spent warming up linearly (cosine only).
        floor: the cosine's end, as a share of the peak.
        step_size: units between two decays (step only).
        gamma: the decay factor (step only).
    """

    kind: str = "cosine"
    warmup: float = 0.0
    floor: float = 0.0
    step_size: int = 10
    gamma: float = 0.1

    def __post_init__(self) -> None:
        """Refuse an unknown kind or a warm-up outside [0, 1]."""
        if self.kind not in KINDS:
            raise CxrkitError(f"schedule must be one of {KINDS}, got {self.kind!r}")
        if not 0.0 <= self.warmup <= 1.0:
            raise CxrkitError(f"warmup={self.warmup}: must lie between 0 and 1")

    def factor(self, done: int, total: int, time_share: float = 0.0) -> float:
        """The rate (share of the peak) of the unit after `done` of `total` units.

        `time_share` is the share of a time budget spent (0 without one). The warm-up
        counts the unit itself (its first unit already trains); the decay counts the
        progress made before it.
        """
        if self.kind == "constant":
            return 1.0
        if self.kind == "step":
            return self.gamma ** (done // self.step_size)
        total = max(1, total)
        start = min(1.0, max(done / total, time_share))
        warm = 1.0
        if self.warmup > 0:
            warm = min(1.0, max((done + 1) / total, time_share) / self.warmup)
        decay = (start - self.warmup) / (1.0 - self.warmup) if self.warmup < 1.0 else 0.0
        cosine = 0.5 * (1.0 + math.cos(math.pi * max(0.0, decay)))
        return warm * (self.floor + (1.0 - self.floor) * cosine)


def schedule_from_config(cfg: Any) -> Schedule:
    """The classifier's per-epoch schedule of a `TrainConfig` (`scheduler`: cosine|step|none)."""
    if cfg.scheduler == "cosine":
        return Schedule("cosine")
    if cfg.scheduler == "step":
        return Schedule("step", step_size=cfg.step_size, gamma=cfg.gamma)
    return Schedule("constant")


def set_rate(optimizer: torch.optim.Optimizer, peaks: list[float], factor: float) -> None:
    """Set every parameter group's rate to its peak times `factor`."""
    for group, peak in zip(optimizer.param_groups, peaks, strict=True):
        group["lr"] = peak * factor
