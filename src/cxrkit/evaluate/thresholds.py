"""Operating-point selection: Youden's J, a target sensitivity, the least expected cost, or
the midpoint between the classes.

Method spellings (training's `threshold_method`, `cxr calibrate --method`): ``youden``;
``sensitivity`` (with ``target_sensitivity``) or ``sensitivity:0.95``; ``cost:RATIO`` where
RATIO = cost of a missed positive / cost of a false alarm; ``midpoint``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_curve

from cxrkit.card import DEFAULT_THRESHOLD
from cxrkit.evaluate.validation import EvaluationError, check_inputs

__all__ = ["DEFAULT_THRESHOLD", "METHODS"]

METHODS = ("youden", "sensitivity", "cost", "midpoint")
_NO_PARAMETER = ("youden", "midpoint")


def parse_threshold_method(method: str, target_sensitivity: float = 0.95) -> tuple[str, float]:
    """Split a method spelling into (name, parameter): target sensitivity or cost ratio."""
    name, sep, raw = str(method).strip().partition(":")
    name = name.strip().lower()
    if name not in METHODS or (name in _NO_PARAMETER and sep) or (name == "cost" and not sep):
        raise EvaluationError(
            "threshold method must be youden, midpoint, sensitivity[:X] or cost:RATIO, "
            f"got {method!r}"
        )
    if not sep:
        return name, float(target_sensitivity) if name == "sensitivity" else float("nan")
    try:
        value = float(raw)
    except ValueError:
        raise EvaluationError(f"threshold method {method!r}: {raw!r} is not a number") from None
    if name == "sensitivity" and not 0.0 < value <= 1.0:
        raise EvaluationError(f"threshold method {method!r}: sensitivity must lie in (0, 1]")
    if name == "cost" and not (np.isfinite(value) and value > 0.0):
        raise EvaluationError(f"threshold method {method!r}: the cost ratio must be > 0")
    return name, value


def choose_threshold(
    y_true_binary: Sequence[int] | np.ndarray,
    scores: Sequence[float] | np.ndarray,
    method: str = "youden",
    target_sensitivity: float = 0.95,
) -> float:
    """Pick a score threshold from the ROC curve; a film is positive when ``score >= threshold``.

    ``youden`` maximises sensitivity + specificity - 1 (ties: the highest threshold).
    ``sensitivity`` (or ``sensitivity:X``) returns the highest threshold whose sensitivity
    reaches ``target_sensitivity`` (i.e. the best specificity meeting the target).
    ``cost:RATIO`` minimises RATIO * missed positives + false alarms on these films (ties:
    the highest threshold). ``midpoint`` lies halfway, in log-odds, between the median
    score of the negatives and that of the positives: it ignores where the two classes'
    tails happen to cross on these films, so it keeps a margin on both sides when another
    site's films shift the scores (Youden's threshold sits at the edge of one class).
    Raises :class:`EvaluationError` when ``y_true_binary`` holds only one outcome.
    """
    name, value = parse_threshold_method(method, target_sensitivity)
    if name == "sensitivity":
        target_sensitivity = value
    y = np.asarray(y_true_binary)
    s = np.asarray(scores, dtype=np.float64)
    if y.ndim != 1 or s.shape != y.shape:
        raise EvaluationError(
            f"y_true and scores must be 1-D and of equal length, got {y.shape} and {s.shape}"
        )
    if not np.all(np.isin(y, (0, 1))):
        raise EvaluationError("y_true for a threshold must be 0/1")
    if not np.all(np.isfinite(s)):
        raise EvaluationError("scores contain NaN or infinite values")
    if y.min() == y.max():
        raise EvaluationError("cannot choose a threshold: the labels hold only one class")
    if not 0.0 < target_sensitivity <= 1.0:
        raise EvaluationError(f"target_sensitivity must lie in (0, 1], got {target_sensitivity}")

    if name == "midpoint":
        return _log_odds_midpoint(s[y == 0], s[y == 1])
    fpr, tpr, thr = roc_curve(y, s, drop_intermediate=False)
    if name == "youden":
        idx = int(np.argmax(tpr - fpr))
    elif name == "cost":
        n_pos, n_neg = int(np.sum(y == 1)), int(np.sum(y == 0))
        idx = int(np.argmin(value * n_pos * (1.0 - tpr) + n_neg * fpr))
    else:
        idx = int(np.flatnonzero(tpr >= target_sensitivity - 1e-12)[0])
    t = float(thr[idx])
    if not np.isfinite(t):  # roc_curve's first threshold (+inf) means "nothing is positive"
        t = float(np.nextafter(s.max(), np.inf))
    return t


def _log_odds_midpoint(negatives: np.ndarray, positives: np.ndarray) -> float:
    """Probability halfway (in log-odds) between the two classes' median probabilities."""
    eps = 1e-6
    logit = lambda p: np.log(np.clip(p, eps, 1 - eps) / np.clip(1 - p, eps, 1))  # noqa: E731
    middle = 0.5 * (float(np.median(logit(negatives))) + float(np.median(logit(positives))))
    return float(1.0 / (1.0 + np.exp(-middle)))


def choose_thresholds(
    y_true: Sequence | np.ndarray,
    probs: Sequence | np.ndarray,
    task: str,
    method: str = "youden",
    target_sensitivity: float = 0.95,
    class_names: Sequence[str] | None = None,
) -> list[float]:
    """Per-task thresholds from validation predictions.

    binary: ``[t]`` for the positive column (column 1); multilabel: one threshold per class;
    multiclass: ``[]`` (predictions are the argmax). Thresholds are probabilities, at most 1
    (a rule that calls nothing positive becomes 1). A multilabel class, or a binary
    validation set, with only one outcome falls back to 0.5 with a ``UserWarning``.
    """
    y, p, names = check_inputs(y_true, probs, class_names, task)
    if task == "multiclass":
        return []
    if task == "binary":
        cols, targets = [1], [y]
    else:
        cols, targets = list(range(p.shape[1])), [y[:, j] for j in range(p.shape[1])]
    out: list[float] = []
    for j, t in zip(cols, targets, strict=True):
        if t.min() == t.max():
            warnings.warn(
                f"class {names[j]!r}: validation labels hold one outcome only; "
                f"using threshold {DEFAULT_THRESHOLD}",
                UserWarning,
                stacklevel=2,
            )
            out.append(DEFAULT_THRESHOLD)
        else:
            # a card's threshold is a probability: "nothing positive" above 1 becomes 1
            out.append(min(choose_threshold(t, p[:, j], method, target_sensitivity), 1.0))
    return out
