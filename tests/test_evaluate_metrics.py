"""compute_metrics against scikit-learn, bootstrap CIs, and degenerate inputs."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    balanced_accuracy_score,
    confusion_matrix,
    hamming_loss,
    multilabel_confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from cxrkit.evaluate import EvaluationError, compute_metrics
from cxrkit.evaluate.auc import bootstrap_aucs, stratified_counts, weighted_auc

TOL = 1e-9


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _binary(n: int = 300, seed: int = 1, signal: float = 1.2):
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.4).astype(int)
    p1 = 1.0 / (1.0 + np.exp(-(rng.normal(size=n) + signal * (2 * y - 1))))
    return y, np.column_stack([1.0 - p1, p1])


def _multiclass(n: int = 400, c: int = 4, seed: int = 2):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c))
    logits[np.arange(n), y] += 1.3
    return y, _softmax(logits)


def _multilabel(n: int = 500, c: int = 5, seed: int = 3):
    rng = np.random.default_rng(seed)
    y = (rng.random((n, c)) < np.linspace(0.1, 0.5, c)).astype(int)
    p = 1.0 / (1.0 + np.exp(-(rng.normal(size=(n, c)) + 2.0 * y - 1.5)))
    return y, p


def _check_prf(m: dict, y, pred, names, labels=None):
    prec, rec, f1, sup = precision_recall_fscore_support(
        y, pred, labels=labels, average=None, zero_division=0
    )
    for j, name in enumerate(names):
        pc = m["per_class"][name]
        assert pc["precision"] == pytest.approx(prec[j], abs=TOL)
        assert pc["recall"] == pytest.approx(rec[j], abs=TOL)
        assert pc["f1"] == pytest.approx(f1[j], abs=TOL)
        assert pc["support"] == sup[j]


@pytest.mark.parametrize("threshold", [None, 0.3, 0.71])
def test_binary_matches_sklearn(threshold):
    y, p = _binary()
    names = ["normal", "pneumonia"]
    m = compute_metrics(y, p, names, "binary", thresholds=threshold, n_bootstrap=200)
    t = 0.5 if threshold is None else threshold
    pred = (p[:, 1] >= t).astype(int)
    assert m["n"] == len(y) and m["task"] == "binary" and m["class_names"] == names
    assert m["threshold"] == t and m["thresholds"] == [t]
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=TOL)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=TOL)
    cm = confusion_matrix(y, pred, labels=[0, 1])
    assert m["confusion_matrix"] == cm.tolist()
    _check_prf(m, y, pred, names, labels=[0, 1])
    assert m["auc"] == pytest.approx(roc_auc_score(y, p[:, 1]), abs=TOL)
    assert m["per_class"]["pneumonia"]["auc"] == pytest.approx(m["auc"], abs=TOL)
    assert m["per_class"]["normal"]["auc"] == pytest.approx(roc_auc_score(1 - y, p[:, 0]), abs=TOL)
    (tn, fp), (fn, tp) = cm
    assert m["sensitivity"] == pytest.approx(tp / (tp + fn), abs=TOL)
    assert m["specificity"] == pytest.approx(tn / (tn + fp), abs=TOL)
    assert m["ppv"] == pytest.approx(tp / (tp + fp), abs=TOL)
    assert m["npv"] == pytest.approx(tn / (tn + fn), abs=TOL)
    assert m["warnings"] == []


def test_multiclass_matches_sklearn():
    y, p = _multiclass()
    names = ["normal", "bacterial", "viral", "covid"]
    m = compute_metrics(y, p, names, "multiclass", n_bootstrap=200)
    pred = p.argmax(axis=1)
    assert m["thresholds"] == [] and "threshold" not in m
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=TOL)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=TOL)
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    _check_prf(m, y, pred, names, labels=list(range(4)))
    assert m["auc"] == pytest.approx(
        roc_auc_score(y, p, multi_class="ovr", average="macro"), abs=TOL
    )
    for j, name in enumerate(names):
        assert m["per_class"][name]["auc"] == pytest.approx(roc_auc_score(y == j, p[:, j]), abs=TOL)


def test_multilabel_matches_sklearn():
    y, p = _multilabel()
    names = [f"finding {j}" for j in range(y.shape[1])]
    thr = [0.5, 0.4, 0.6, 0.3, 0.55]
    m = compute_metrics(y, p, names, "multilabel", thresholds=thr, n_bootstrap=100)
    pred = (p >= np.asarray(thr)).astype(int)
    assert m["thresholds"] == thr
    assert m["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=TOL)
    assert m["hamming_accuracy"] == pytest.approx(1.0 - hamming_loss(y, pred), abs=TOL)
    assert m["confusion_matrix"] == multilabel_confusion_matrix(y, pred).tolist()
    _check_prf(m, y, pred, names)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p, average="macro"), abs=TOL)
    for j, name in enumerate(names):
        want = roc_auc_score(y[:, j], p[:, j])
        assert m["per_class"][name]["auc"] == pytest.approx(want, abs=TOL)
        assert m["per_class"][name]["threshold"] == thr[j]
    bal = [
        0.5 * (np.mean(pred[y[:, j] == 1, j] == 1) + np.mean(pred[y[:, j] == 0, j] == 0))
        for j in range(len(names))
    ]
    assert m["balanced_accuracy"] == pytest.approx(np.mean(bal), abs=TOL)


def test_auc_with_ties_matches_sklearn():
    y, p = _binary(n=400, seed=5)
    p1 = np.round(p[:, 1], 1)  # heavy ties
    m = compute_metrics(y, np.column_stack([1 - p1, p1]), ["a", "b"], "binary", n_bootstrap=0)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p1), abs=TOL)
    assert m["auc_ci"] is None


def test_weighted_auc_equals_auc_of_repeated_films():
    rng = np.random.default_rng(7)
    scores = np.round(rng.random(60), 2)
    pos = rng.random(60) < 0.5
    counts = rng.integers(0, 4, size=(3, 60)).astype(float)
    got = weighted_auc(scores, pos, counts)
    for b in range(3):
        reps = counts[b].astype(int)
        want = roc_auc_score(np.repeat(pos, reps), np.repeat(scores, reps))
        assert got[b] == pytest.approx(want, abs=TOL)


def test_stratified_resamples_keep_class_sizes():
    strata = np.array([0] * 7 + [1] * 3 + [2] * 20)
    counts = stratified_counts(strata, 50, np.random.default_rng(0))
    assert counts.shape == (50, 30)
    for value in (0, 1, 2):
        assert np.all(counts[:, strata == value].sum(axis=1) == np.sum(strata == value))
    boot = bootstrap_aucs(
        np.random.default_rng(1).random((30, 1)),
        (strata == 1)[:, None],
        strata == 1,
        50,
        np.random.default_rng(2),
    )
    assert np.all(np.isfinite(boot))


def test_bootstrap_ci_contains_estimate_and_narrows_with_more_films():
    widths = []
    for n in (150, 2400):
        y, p = _binary(n=n, seed=11, signal=0.8)
        m = compute_metrics(y, p, ["neg", "pos"], "binary", n_bootstrap=500, seed=3)
        lo, hi = m["auc_ci"]
        assert lo < m["auc"] < hi
        widths.append(hi - lo)
        for name in ("neg", "pos"):
            clo, chi = m["per_class"][name]["auc_ci"]
            assert clo < m["per_class"][name]["auc"] < chi
    assert widths[1] < 0.5 * widths[0]
    for y, p, task in (_multiclass() + ("multiclass",), _multilabel() + ("multilabel",)):
        m = compute_metrics(y, p, None, task, n_bootstrap=300)
        assert m["auc_ci"][0] < m["auc"] < m["auc_ci"][1]


def test_bootstrap_is_seeded():
    y, p = _binary()
    a = compute_metrics(y, p, ["a", "b"], "binary", n_bootstrap=200, seed=4)
    b = compute_metrics(y, p, ["a", "b"], "binary", n_bootstrap=200, seed=4)
    c = compute_metrics(y, p, ["a", "b"], "binary", n_bootstrap=200, seed=5)
    assert a["auc_ci"] == b["auc_ci"] != c["auc_ci"]


def test_bootstrap_is_fast():
    y, p = _binary(n=1000, seed=9)
    start = time.perf_counter()
    m = compute_metrics(y, p, ["a", "b"], "binary", n_bootstrap=1000)
    assert time.perf_counter() - start < 2.0
    assert m["bootstrap"]["n_resamples"] == 1000


@pytest.mark.parametrize(
    "task,data",
    [("binary", _binary()), ("multiclass", _multiclass()), ("multilabel", _multilabel())],
)
def test_output_is_plain_json(task, data):
    y, p = data
    m = compute_metrics(y, p, None, task, n_bootstrap=50)
    text = json.dumps(m, allow_nan=False)
    assert json.loads(text) == m
    for key in (
        "n",
        "task",
        "class_names",
        "accuracy",
        "balanced_accuracy",
        "auc",
        "auc_ci",
        "per_class",
        "confusion_matrix",
        "thresholds",
        "ece",
        "reliability",
        "warnings",
    ):
        assert key in m
    assert set(m["per_class"]) == set(m["class_names"])


def test_single_class_binary_gives_none_auc_and_warning():
    y = np.zeros(40, dtype=int)
    p1 = np.linspace(0.05, 0.6, 40)
    m = compute_metrics(y, np.column_stack([1 - p1, p1]), ["normal", "pneumonia"], "binary")
    assert m["auc"] is None and m["auc_ci"] is None
    assert m["sensitivity"] is None and m["specificity"] is not None
    assert any("AUC" in w for w in m["warnings"])
    json.dumps(m, allow_nan=False)


def test_multilabel_constant_class_is_left_out_of_macro():
    y, p = _multilabel()
    y[:, 2] = 0
    m = compute_metrics(y, p, list("abcde"), "multilabel", n_bootstrap=100)
    assert m["per_class"]["c"]["auc"] is None
    others = [roc_auc_score(y[:, j], p[:, j]) for j in (0, 1, 3, 4)]
    assert m["auc"] == pytest.approx(np.mean(others), abs=TOL)
    assert any("'c'" in w for w in m["warnings"])
    assert m["auc_ci"] is not None


def test_multiclass_absent_class_and_all_one_class():
    y, p = _multiclass()
    keep = y != 3
    m = compute_metrics(y[keep], p[keep], list("wxyz"), "multiclass", n_bootstrap=50)
    assert m["per_class"]["z"]["auc"] is None and m["per_class"]["z"]["support"] == 0
    assert m["auc"] == pytest.approx(
        np.mean([roc_auc_score(y[keep] == j, p[keep, j]) for j in range(3)]), abs=TOL
    )
    assert m["warnings"]
    only = y == 1
    m = compute_metrics(y[only], p[only], list("wxyz"), "multiclass", n_bootstrap=50)
    assert m["auc"] is None and m["auc_ci"] is None and m["warnings"]


def test_softmax_warning_and_input_errors():
    y, p = _binary()
    m = compute_metrics(y, p * 0.5, ["a", "b"], "binary", n_bootstrap=0)
    assert any("sum to 1" in w for w in m["warnings"])
    with pytest.raises(EvaluationError):
        compute_metrics(y, p[:, 1], ["a", "b"], "binary")
    with pytest.raises(EvaluationError):
        compute_metrics(y, p, ["a", "b", "c"], "binary")
    with pytest.raises(EvaluationError):
        compute_metrics(y + 5, p, ["a", "b"], "binary")
    with pytest.raises(EvaluationError):
        compute_metrics(y, p, ["a", "b"], "regression")
    with pytest.raises(EvaluationError):
        compute_metrics(y, p, ["a", "b"], "binary", thresholds=[0.2, 0.3])
    bad = p.copy()
    bad[0, 0] = np.nan
    with pytest.raises(EvaluationError):
        compute_metrics(y, bad, ["a", "b"], "binary")


def test_one_hot_labels_accepted_for_single_label():
    y, p = _multiclass()
    a = compute_metrics(y, p, None, "multiclass", n_bootstrap=0)
    b = compute_metrics(np.eye(4, dtype=int)[y], p, None, "multiclass", n_bootstrap=0)
    assert a == b


def test_multiclass_ignores_thresholds_with_warning():
    y, p = _multiclass()
    m = compute_metrics(y, p, None, "multiclass", thresholds=[0.9], n_bootstrap=0)
    assert m["thresholds"] == []
    assert m["accuracy"] == pytest.approx(accuracy_score(y, p.argmax(axis=1)), abs=TOL)
    assert any("ignored" in w for w in m["warnings"])
