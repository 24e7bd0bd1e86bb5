"""Input checking shared by the evaluation modules: labels, probabilities, class names, task."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cxrkit.errors import CxrkitError

TASKS = ("binary", "multiclass", "multilabel")


class EvaluationError(CxrkitError, ValueError):
    """Evaluation inputs are malformed (shapes, task, label values, non-finite probabilities)."""


def check_task(task: str) -> str:
    """Return ``task`` if it is one of ``binary``, ``multiclass``, ``multilabel``; else raise."""
    if task not in TASKS:
        raise EvaluationError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    return task


def check_inputs(
    y_true: Sequence | np.ndarray,
    probs: Sequence | np.ndarray,
    class_names: Sequence[str] | None,
    task: str,
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Validate and normalise evaluation inputs.

    Returns ``(y, p, names)``: ``y`` is int64 (N,) for single-label tasks or (N, C) 0/1 for
    multilabel, ``p`` is float64 (N, C), ``names`` a list of C strings. A one-hot (N, C)
    ``y_true`` is accepted for single-label tasks and turned into class indices.
    """
    check_task(task)
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise EvaluationError(
            f"probs must be a 2-D (N, C) array (softmax columns for binary), got shape {p.shape}"
        )
    n, c = p.shape
    if n == 0:
        raise EvaluationError("no predictions to evaluate (N = 0)")
    if not np.all(np.isfinite(p)):
        raise EvaluationError("probs contains NaN or infinite values")
    names = [str(x) for x in class_names] if class_names is not None else [str(i) for i in range(c)]
    if len(names) != c:
        raise EvaluationError(f"{len(names)} class names for {c} probability columns")
    if task == "binary" and c != 2:
        raise EvaluationError(f"binary task needs 2 probability columns (softmax), got {c}")
    if task == "multiclass" and c < 2:
        raise EvaluationError(f"multiclass task needs at least 2 columns, got {c}")

    y = np.asarray(y_true)
    if task == "multilabel":
        if y.shape != (n, c):
            raise EvaluationError(f"multilabel y_true must have shape {(n, c)}, got {y.shape}")
        if not np.all(np.isin(y, (0, 1))):
            raise EvaluationError("multilabel y_true must contain only 0 and 1")
        return y.astype(np.int64), p, names

    if y.ndim == 2 and y.shape == (n, c) and np.all(np.isin(y, (0, 1))) and np.all(y.sum(1) == 1):
        y = y.argmax(axis=1)
    if y.shape != (n,):
        raise EvaluationError(f"{task} y_true must have shape ({n},), got {y.shape}")
    if y.dtype.kind == "f":
        if not np.all(np.isfinite(y)) or not np.all(y == np.round(y)):
            raise EvaluationError("y_true must hold integer class indices")
    elif y.dtype.kind not in "iub":
        raise EvaluationError(f"y_true must hold integer class indices, got dtype {y.dtype}")
    y = y.astype(np.int64)
    if y.min() < 0 or y.max() >= c:
        raise EvaluationError(f"y_true class indices must lie in [0, {c - 1}]")
    return y, p, names


def one_hot(y: np.ndarray, n_classes: int) -> np.ndarray:
    """(N,) class indices -> (N, C) 0/1 int matrix."""
    out = np.zeros((y.shape[0], n_classes), dtype=np.int64)
    out[np.arange(y.shape[0]), y] = 1
    return out
