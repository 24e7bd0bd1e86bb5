"""`predict`: probabilities for films on disk, streamed row by row through a `Classifier`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cxrkit.card import Decision, ModelCard
from cxrkit.models.ood import FeatureReference

if TYPE_CHECKING:
    from cxrkit.infer.onnx_runtime import OnnxModel

__all__ = ["label_row", "predict", "predict_batches"]


def predict_batches(
    model: torch.nn.Module | OnnxModel,
    card: ModelCard | dict[str, Any],
    paths: list[Path],
    *,
    batch_size: int = 32,
    num_workers: int = 2,
    device: str = "auto",
    screen: bool = True,
    reference: FeatureReference | None = None,
) -> Iterator[dict[str, Any]]:
    """Yield one row per film, in the order of `paths`: probabilities and label, or its error.

    `Classifier(model, card, reference=...).predict_iter(paths)` for a loaded `(model, card)`
    pair (a torch module or an `OnnxModel`); see `Classifier.predict_iter` for the rows.

    Deprecated (kept for one release): hold a `Classifier` and call `predict_iter`.
    """
    import warnings

    from cxrkit.classifier import Classifier

    warnings.warn(
        "predict_batches(model, card, paths) is deprecated; use "
        "Classifier(model, card).predict_iter(paths)",
        DeprecationWarning,
        stacklevel=2,
    )
    dev = device if isinstance(model, torch.nn.Module) else "cpu"
    clf = Classifier(model, card, reference=reference, device=dev)
    return clf.predict_iter(paths, batch_size=batch_size, num_workers=num_workers, screen=screen)


def label_row(
    p: np.ndarray, classes: list[str], task: str, thresholds: list[float]
) -> dict[str, Any]:
    """Deprecated (one release): `Decision.build(task, classes, thresholds).row(p)`, the
    card's decision rule (`ModelCard.decision`)."""
    import warnings

    warnings.warn(
        "label_row is deprecated; use cxrkit.card.Decision(...).row", DeprecationWarning, 2
    )
    return Decision.build(task, classes, thresholds).row(p)


def predict(model_path: str | Path, paths: list[str | Path], **kw: Any) -> list[dict[str, Any]]:
    """Python API: load a model file; predict every film under `paths` (files, folders, globs)."""
    from cxrkit.classifier import Classifier

    runtime = kw.pop("runtime", "torch")
    device = kw.pop("device", "auto")
    return Classifier.load(model_path, runtime, device=device).predict(paths, **kw)
