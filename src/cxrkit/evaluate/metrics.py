"""Classification metrics with bootstrap CIs for binary, multiclass and multilabel tasks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import (
    average_precision_score,
    confusion_matrix,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
)

from cxrkit.card import Decision, DecisionError
from cxrkit.evaluate.auc import binary_auc, bootstrap_aucs, percentile_ci
from cxrkit.evaluate.calibration import calibration
from cxrkit.evaluate.proportions import wilson_interval
from cxrkit.evaluate.validation import EvaluationError, check_inputs, one_hot


def to_jsonable(obj: Any) -> Any:
    """Recursively turn numpy scalars/arrays into plain Python; NaN and inf become None."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    return obj


def resolve_thresholds(
    thresholds: float | Sequence[float] | None, task: str, n_classes: int
) -> list[float]:
    """Normalise user thresholds: binary -> [t]; multilabel -> C values; multiclass -> []."""
    return list(_decision(thresholds, task, [str(j) for j in range(n_classes)]).thresholds)


def _decision(
    thresholds: float | Sequence[float] | None, task: str, names: Sequence[str]
) -> Decision:
    """The decision rule (the card's, `cxrkit.card.Decision`) for these user thresholds."""
    try:
        return Decision.build(task, names, thresholds)
    except DecisionError as exc:
        raise EvaluationError(f"{task} task: {exc}") from exc


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def _balanced_accuracy(cm: np.ndarray) -> float:
    """Mean recall over classes present in y_true (same rule as sklearn)."""
    support = cm.sum(axis=1)
    present = support > 0
    return float(np.mean(np.diag(cm)[present] / support[present]))


def _per_class_basics(
    y: np.ndarray, pred: np.ndarray, names: list[str], task: str
) -> dict[str, dict[str, Any]]:
    labels = None if task == "multilabel" else list(range(len(names)))
    prec, rec, f1, sup = precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    return {
        name: {
            "precision": float(prec[j]),
            "recall": float(rec[j]),
            "f1": float(f1[j]),
            "support": int(sup[j]),
        }
        for j, name in enumerate(names)
    }


def _aucs_with_ci(
    y_onehot: np.ndarray,
    probs: np.ndarray,
    names: list[str],
    task: str,
    y_single: np.ndarray | None,
    n_bootstrap: int,
    rng: np.random.Generator,
    level: float,
    warnings: list[str],
) -> tuple[list[float | None], list[list[float] | None], list[int], list[float] | None]:
    """Per-class AUCs and CIs, the eligible classes, and the macro-AUC CI.

    Single-label tasks resample stratified on the class, so every class present keeps its
    count. Multilabel resamples each class stratified on its own label for the per-class
    CIs, and on the label combination (powerset) for the macro CI.
    """
    n_classes = probs.shape[1]
    aucs = [binary_auc(y_onehot[:, j], probs[:, j]) for j in range(n_classes)]
    eligible = [j for j, a in enumerate(aucs) if a is not None]
    for j, a in enumerate(aucs):
        if a is None and task != "binary":
            outcome = "positive" if y_onehot[:, j].any() else "negative"
            warnings.append(
                f"class {names[j]!r}: every film is {outcome} for it; its AUC is undefined"
            )
    cis: list[list[float] | None] = [None] * n_classes
    macro_ci = None
    if n_bootstrap <= 0 or not eligible:
        return aucs, cis, eligible, macro_ci

    pos = y_onehot.astype(bool)
    if task == "multilabel":
        for j in eligible:
            boot = bootstrap_aucs(probs[:, [j]], pos[:, [j]], y_onehot[:, j], n_bootstrap, rng)
            cis[j] = percentile_ci(boot[:, 0], level)
        _, combo = np.unique(y_onehot, axis=0, return_inverse=True)
        boot = bootstrap_aucs(probs[:, eligible], pos[:, eligible], combo.ravel(), n_bootstrap, rng)
        macro_ci = percentile_ci(np.mean(boot, axis=1), level)
    else:
        boot = bootstrap_aucs(probs[:, eligible], pos[:, eligible], y_single, n_bootstrap, rng)
        for k, j in enumerate(eligible):
            cis[j] = percentile_ci(boot[:, k], level)
        macro_ci = percentile_ci(np.mean(boot, axis=1), level)
    return aucs, cis, eligible, macro_ci


def compute_metrics(
    y_true: Sequence | np.ndarray,
    probs: Sequence | np.ndarray,
    class_names: Sequence[str] | None,
    task: str,
    thresholds: float | Sequence[float] | None = None,
    n_bootstrap: int = 1000,
    seed: int = 0,
    ci: float = 0.95,
) -> dict[str, Any]:
    """All evaluation metrics as a JSON-serialisable dict (see module docs for the keys).

    ``y_true``: (N,) class indices (binary/multiclass) or (N, C) 0/1 (multilabel).
    ``probs``: (N, C) softmax columns (binary: column 1 is positive) or sigmoid columns.
    Binary predicts positive when ``p1 >= threshold`` (0.5 default); multiclass uses argmax;
    multilabel uses one threshold per class (0.5 default). AUC CIs are percentile bootstrap
    intervals over films with ``n_bootstrap`` resamples (0 disables them). Undefined values
    (e.g. AUC with one class present) are ``None`` with an entry in ``warnings``.
    """
    y, p, names = check_inputs(y_true, probs, class_names, task)
    if not 0.0 < ci < 1.0:
        raise EvaluationError(f"ci must lie in (0, 1), got {ci}")
    n, n_classes = p.shape
    decision = _decision(thresholds, task, names)
    thr = list(decision.thresholds)
    warns: list[str] = []
    if task == "multiclass" and thresholds is not None and np.size(thresholds) > 0:
        warns.append("thresholds are ignored for multiclass (predictions are the argmax)")
    if task != "multilabel" and np.max(np.abs(p.sum(axis=1) - 1.0)) > 1e-3:
        warns.append(f"{task} probabilities do not sum to 1 per film; expected softmax columns")
    if p.min() < 0.0 or p.max() > 1.0:
        warns.append("probabilities fall outside [0, 1]")

    out: dict[str, Any] = {"n": n, "task": task, "class_names": names, "thresholds": thr}
    multilabel = task == "multilabel"
    pred = decision.positive(p).astype(np.int64) if multilabel else decision.indices(p)
    y_onehot = y if task == "multilabel" else one_hot(y, n_classes)
    per_class = _per_class_basics(y, pred, names, task)

    if task == "multilabel":
        cms = multilabel_confusion_matrix(y, pred)
        out["accuracy"] = float(np.mean(np.all(pred == y, axis=1)))
        out["hamming_accuracy"] = float(np.mean(pred == y))
        bal = []
        for j, name in enumerate(names):
            (tn, fp), (fn, tp) = cms[j]
            spec = _ratio(tn, tn + fp)
            per_class[name].update(specificity=spec, threshold=thr[j])
            if tp + fn > 0 and spec is not None:
                bal.append(0.5 * (tp / (tp + fn) + spec))
        out["balanced_accuracy"] = float(np.mean(bal)) if bal else None
        out["confusion_matrix"] = cms.tolist()
    else:
        cm = confusion_matrix(y, pred, labels=list(range(n_classes)))
        out["accuracy"] = float(np.mean(pred == y))
        out["balanced_accuracy"] = _balanced_accuracy(cm)
        out["confusion_matrix"] = cm.tolist()
    out["f1_macro"] = float(np.mean([per_class[c]["f1"] for c in names]))

    if task == "binary":
        (tn, fp), (fn, tp) = np.asarray(out["confusion_matrix"])
        out.update(
            threshold=thr[0],
            sensitivity=_ratio(tp, tp + fn),
            specificity=_ratio(tn, tn + fp),
            ppv=_ratio(tp, tp + fp),
            npv=_ratio(tn, tn + fn),
            accuracy_ci=wilson_interval(int(tn + tp), n, ci),
            sensitivity_ci=wilson_interval(int(tp), int(tp + fn), ci),
            specificity_ci=wilson_interval(int(tn), int(tn + fp), ci),
            predicted_positive_rate=float(tp + fp) / n,
            prevalence=float(tp + fn) / n,
        )
    else:
        out["accuracy_ci"] = wilson_interval(int(round(out["accuracy"] * n)), n, ci)

    if task == "binary" and y.min() == y.max():
        warns.append(f"only one class ({names[int(y[0])]!r}) present in y_true; AUC is undefined")
    rng = np.random.default_rng(seed)
    aucs, cis, eligible, macro_ci = _aucs_with_ci(
        y_onehot, p, names, task, None if task == "multilabel" else y, n_bootstrap, rng, ci, warns
    )
    for j, name in enumerate(names):
        per_class[name]["auc"] = aucs[j]
        per_class[name]["auc_ci"] = cis[j]
        per_class[name]["average_precision"] = (
            float(average_precision_score(y_onehot[:, j], p[:, j])) if aucs[j] is not None else None
        )
    if task == "binary":
        out["auc"], out["auc_ci"] = aucs[1], cis[1]
    else:
        out["auc"] = float(np.mean([aucs[j] for j in eligible])) if eligible else None
        out["auc_ci"] = macro_ci if eligible else None
        if eligible and len(eligible) < n_classes:
            warns.append(
                f"macro AUC averages {len(eligible)} of {n_classes} classes "
                "(the others lack positives or negatives)"
            )
    if out["auc"] is None and task != "binary":
        warns.append("no class has both outcomes in y_true; AUC is undefined")

    ece, reliability, ece_per_class = calibration(y, p, task)
    out["ece"] = ece
    if ece_per_class is not None:
        out["ece_per_class"] = dict(zip(names, ece_per_class, strict=True))
        for name, value in zip(names, ece_per_class, strict=True):
            per_class[name]["ece"] = value
    out["per_class"] = per_class
    out["reliability"] = reliability
    out["bootstrap"] = {
        "n_resamples": int(max(n_bootstrap, 0)),
        "ci_level": ci,
        "seed": seed,
        "method": "percentile; films resampled within each class"
        + (" (label combination for the macro AUC)" if task == "multilabel" else ""),
    }
    out["warnings"] = warns
    return to_jsonable(out)
