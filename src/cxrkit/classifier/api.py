"""The function API over one `Classifier`: `predict(model_path, paths)`, and the wrappers of
an already loaded `(model, card)` pair, deprecated (kept for one release): `predict_batches`,
`explain` and `label_row`. Hold a `Classifier` instead: `Classifier.load(path)`."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from cxrkit.card import Decision, ModelCard
from cxrkit.classifier.classifier import Classifier
from cxrkit.models.ood import FeatureReference

if TYPE_CHECKING:
    from cxrkit.classifier.onnx_runtime import OnnxModel

__all__ = ["explain", "label_row", "predict", "predict_batches"]


def predict(model_path: str | Path, paths: list[str | Path], **kw: Any) -> list[dict[str, Any]]:
    """Python API: load a model file; predict every film under `paths` (files, folders, globs)."""
    runtime = kw.pop("runtime", "torch")
    device = kw.pop("device", "auto")
    return Classifier.load(model_path, runtime, device=device).predict(paths, **kw)


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
    warnings.warn(
        "predict_batches(model, card, paths) is deprecated; use "
        "Classifier(model, card).predict_iter(paths)",
        DeprecationWarning,
        stacklevel=2,
    )
    dev = device if isinstance(model, torch.nn.Module) else "cpu"
    clf = Classifier(model, card, reference=reference, device=dev)
    return clf.predict_iter(paths, batch_size=batch_size, num_workers=num_workers, screen=screen)


def explain(
    model: torch.nn.Module,
    card: ModelCard | dict[str, Any],
    image: np.ndarray,
    *,
    method: str = "gradcam",
    class_name: str | int | None = None,
    box_threshold: float = 0.5,
    screen: bool = True,
    reference: FeatureReference | None = None,
) -> tuple[np.ndarray, dict[str, Any]]:
    """Heat map (H, W) float32 in [0, 1] at the original size of `image`, and an info dict.

    `image` is a film as `read_image` gives it (float (H, W) in [0, 1]). The map is for
    `class_name` (name or index) or, by default, the class the model decides. `info` holds
    the class, its probability, all probabilities, the method, the CAM layer and the boxes
    (original pixel coordinates) of the map's hot regions, and the flags a `predict` row
    carries (`warning`; with `screen` also view, polarity, not-a-chest-film). Whether the
    film is out of distribution is judged only with the model's feature `reference`
    (`cxrkit.models.ood.load_feature_reference(model_file)`; `Classifier.load` reads it
    itself); without one, `out_of_distribution` is None. Same as
    `Classifier(model, card, reference=reference).explain(image, ...)`.

    Deprecated (kept for one release): hold a `Classifier` and call its `explain`; this
    wrapper builds a new one per call. (It was `cxrkit.explain.explain`: `cxrkit.explain`
    now only computes maps for a prepared input and comes before the classifier.)
    """
    warnings.warn(
        "explain(model, card, image) is deprecated; use Classifier.load(path).explain(image)",
        DeprecationWarning,
        stacklevel=2,
    )
    clf = Classifier(model, card, reference=reference)
    return clf.explain(
        image, method, class_name=class_name, box_threshold=box_threshold, screen=screen
    )


def label_row(
    p: np.ndarray, classes: list[str], task: str, thresholds: list[float]
) -> dict[str, Any]:
    """Deprecated (one release): `Decision.build(task, classes, thresholds).row(p)`, the
    card's decision rule (`ModelCard.decision`)."""
    warnings.warn(
        "label_row is deprecated; use cxrkit.card.Decision(...).row", DeprecationWarning, 2
    )
    return Decision.build(task, classes, thresholds).row(p)
