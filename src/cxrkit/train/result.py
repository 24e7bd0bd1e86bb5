"""What `train()` gives back: the test metrics, the run folder and the trained model."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from cxrkit.classifier import Classifier


@dataclass(frozen=True)
class TrainResult:
    """The outcome of one training run.

    Attributes:
        metrics: test-split metrics (as in the run's `metrics.json`).
        run_dir: the run folder (model file, report, split, logs).
        model_path: the run's `model.safetensors`.
    """

    metrics: dict[str, Any]
    run_dir: Path
    model_path: Path

    @functools.cached_property
    def model(self) -> Classifier:
        """The trained model as a `Classifier`, loaded from `model_path` on first use."""
        from cxrkit.classifier import Classifier

        return Classifier.load(self.model_path)
