"""`predict`: probabilities for films on disk, streamed row by row through a `Classifier`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from cxrkit.models.inference import label_row
from cxrkit.models.ood import FeatureReference

if TYPE_CHECKING:
    from cxrkit.infer.onnx_runtime import OnnxModel

__all__ = ["label_row", "predict", "predict_batches"]


def predict_batches(
    model: torch.nn.Module | OnnxModel,
    card: dict,
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
    """
    from cxrkit.classifier import Classifier

    dev = device if isinstance(model, torch.nn.Module) else "cpu"
    clf = Classifier(model, card, reference=reference, device=dev)
    return clf.predict_iter(paths, batch_size=batch_size, num_workers=num_workers, screen=screen)


def predict(model_path: str | Path, paths: list[str | Path], **kw: Any) -> list[dict[str, Any]]:
    """Python API: load a model file; predict every film under `paths` (files, folders, globs)."""
    from cxrkit.classifier import Classifier

    runtime = kw.pop("runtime", "torch")
    device = kw.pop("device", "auto")
    return Classifier.load(model_path, runtime, device=device).predict(paths, **kw)
