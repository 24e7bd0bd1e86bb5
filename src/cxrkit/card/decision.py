"""`Decision`: the one rule that turns a model's probabilities into labels.

Binary models call the positive class (the second class name) when its probability
reaches the threshold; multi-label models call every class whose probability reaches its
own threshold; multi-class models call the most probable class. A lung mask is a binary
decision per pixel against one threshold. Predict, evaluate, explain, the server, the DICOM
SR writer and site calibration all decide through this class, so they cannot disagree.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: The tasks a decision knows; `segmentation` decides pixels against one threshold.
DECISION_TASKS = ("binary", "multiclass", "multilabel", "segmentation")
DEFAULT_THRESHOLD = 0.5
#: Why a row gets no label.
NOT_PROBABILITIES = "the model gave non-finite or out-of-range probabilities; no label"


class DecisionError(ValueError):
    """A decision rule that cannot be built (wrong threshold count, NaN, out of range)."""


def expected_thresholds(task: str, n_classes: int) -> int:
    """How many thresholds a task's decision has: binary 1, multi-label one per class,
    multi-class none (argmax), segmentation 1."""
    return {"binary": 1, "multilabel": n_classes, "multiclass": 0, "segmentation": 1}[task]


def as_probabilities(probs: Any) -> np.ndarray:
    """Probabilities as a float array in their own precision: a float32 row is compared
    with its threshold in float32 (as numpy compares a float32 with a Python float), a
    float64 row in float64, so every caller decides exactly as `cxr predict` does."""
    p = np.asarray(probs)
    return p if np.issubdtype(p.dtype, np.floating) else p.astype(np.float64)


def is_probability_row(p: Any, n: int) -> bool:
    """Whether `p` is `n` finite numbers in [0, 1] (NaN fails every comparison)."""
    values = np.asarray(p, dtype=np.float64)
    return values.shape == (n,) and bool(np.all((values >= 0) & (values <= 1)))


@dataclass(frozen=True)
class Decision:
    """Task, class names and thresholds (complete: one per decided class, none for
    multi-class), plus the name of the method that chose them."""

    task: str
    class_names: tuple[str, ...]
    thresholds: tuple[float, ...] = ()
    method: str | None = None

    def __post_init__(self) -> None:
        if self.task not in DECISION_TASKS:
            raise DecisionError(f"task must be one of {DECISION_TASKS}, got {self.task!r}")
        names = tuple(str(c) for c in self.class_names)
        if not names or len(set(names)) != len(names):
            raise DecisionError(f"class_names must be distinct and non-empty, got {list(names)}")
        if self.task == "binary" and len(names) != 2:
            raise DecisionError(f"a binary task has 2 class names, got {len(names)}")
        want = expected_thresholds(self.task, len(names))
        values = tuple(float(t) for t in self.thresholds)
        if len(values) != want:
            raise DecisionError(
                f"a {self.task} task with {len(names)} classes needs {want} threshold(s), "
                f"got {len(values)}"
            )
        bad = [t for t in values if not (math.isfinite(t) and 0.0 <= t <= 1.0)]
        if bad:
            raise DecisionError(f"thresholds must be finite numbers in [0, 1], got {bad}")
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "thresholds", values)

    # ---- building ------------------------------------------------------------------------

    @classmethod
    def build(
        cls,
        task: str,
        class_names: Sequence[str],
        thresholds: float | Sequence[float] | None = None,
        method: str | None = None,
    ) -> Decision:
        """A decision from user-style thresholds: None (0.5 each), one number (repeated
        for every class of a multi-label task) or the full list. Multi-class ignores them."""
        if task not in DECISION_TASKS:
            raise DecisionError(f"task must be one of {DECISION_TASKS}, got {task!r}")
        want = expected_thresholds(task, len(class_names))
        if want == 0:
            return cls(task, tuple(class_names), (), method)
        if thresholds is None:
            values = [DEFAULT_THRESHOLD] * want
        else:
            values = np.atleast_1d(np.asarray(thresholds, dtype=np.float64)).ravel().tolist()
            if len(values) == 1:
                values = values * want
            elif len(values) == 0:
                values = [DEFAULT_THRESHOLD] * want
        return cls(task, tuple(class_names), tuple(values), method)

    def with_thresholds(
        self, thresholds: float | Sequence[float] | None, method: str | None = None
    ) -> Decision:
        """The same decision with other thresholds (validated the same way)."""
        return Decision.build(self.task, self.class_names, thresholds, method or self.method)

    # ---- deciding ------------------------------------------------------------------------

    def positive(self, probs: np.ndarray) -> np.ndarray:
        """Decided classes as booleans (N, C) for probabilities (N, C): one True per row
        for binary / multi-class, any number for multi-label, the mask for segmentation.
        Rows that are not probabilities raise `DecisionError`: never a label."""
        p = as_probabilities(probs)
        if self.task == "segmentation":
            return p >= self.thresholds[0]
        self._check(p)
        if self.task == "multilabel":
            return p >= np.asarray(self.thresholds, dtype=p.dtype)[None, :]
        out = np.zeros(p.shape, dtype=bool)
        out[np.arange(len(p)), self.indices(p)] = True
        return out

    def indices(self, probs: np.ndarray) -> np.ndarray:
        """The decided class index (N,) of each row: binary by the threshold, otherwise the
        most probable class (multi-label: the strongest class, e.g. for a CAM target)."""
        p = as_probabilities(probs)
        if p.ndim == 1:
            p = p[None]
        self._check(p)
        if self.task == "binary":
            return (p[:, 1] >= self.thresholds[0]).astype(np.int64)
        return p.argmax(axis=1).astype(np.int64)

    def index(self, p: np.ndarray) -> int:
        """The decided class index of one probability row."""
        return int(self.indices(np.asarray(p)[None])[0])

    def labels(self, probs: np.ndarray) -> list[str]:
        """The decided label of each row; multi-label rows join their classes with '|'."""
        chosen = self.positive(probs)
        return [
            "|".join(c for c, on in zip(self.class_names, row, strict=True) if on) for row in chosen
        ]

    def decide(self, probs: np.ndarray) -> list[str]:
        """Labels for probabilities (N, C); same as `labels` (the issue's name)."""
        return self.labels(probs)

    def row(self, p: np.ndarray) -> dict[str, Any]:
        """`label` and per-class `probabilities` of one row, or `{"error"}` when the row is
        not finite numbers in [0, 1]: a broken model output never becomes a diagnosis."""
        if not is_probability_row(p, len(self.class_names)):
            return {"error": NOT_PROBABILITIES}
        values = as_probabilities(p)
        probs = {c: float(v) for c, v in zip(self.class_names, values, strict=True)}
        return {"label": self.labels(values[None])[0], "probabilities": probs}

    def report(self, p: np.ndarray) -> list[dict[str, Any]]:
        """Per reported class: name, probability, threshold (None for multi-class) and
        `present`. Binary reports its positive class; the others every class."""
        if not is_probability_row(p, len(self.class_names)):
            raise DecisionError(NOT_PROBABILITIES)
        values = as_probabilities(p)
        present = self.positive(values[None])[0]
        rows = [
            {
                "name": c,
                "probability": float(values[j]),
                "threshold": self.threshold_of(j),
                "present": bool(present[j]),
            }
            for j, c in enumerate(self.class_names)
        ]
        return rows[1:] if self.task == "binary" else rows

    def _check(self, p: np.ndarray) -> None:
        """Raise `DecisionError` unless `p` is (N, C) finite numbers in [0, 1]."""
        if p.ndim != 2 or p.shape[1] != len(self.class_names):
            raise DecisionError(
                f"probabilities must be (N, {len(self.class_names)}), got shape {p.shape}"
            )
        if not bool(np.all((p >= 0) & (p <= 1))):  # NaN fails both comparisons
            raise DecisionError(NOT_PROBABILITIES)

    def threshold_of(self, j: int) -> float | None:
        """The threshold class `j` is decided against (None: multi-class argmax)."""
        if self.task == "multilabel":
            return self.thresholds[j]
        if self.task in ("binary", "segmentation"):
            return self.thresholds[0]
        return None

    @property
    def threshold(self) -> float:
        """The single threshold of a binary or segmentation decision."""
        if len(self.thresholds) != 1 or self.task == "multilabel":
            raise DecisionError(f"a {self.task} decision has no single threshold")
        return self.thresholds[0]
