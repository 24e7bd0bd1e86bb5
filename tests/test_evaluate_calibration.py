"""Expected calibration error and reliability bins."""

from __future__ import annotations

import numpy as np
import pytest

from cxrkit.evaluate import compute_metrics
from cxrkit.evaluate.calibration import reliability_bins


def test_ece_hand_example():
    conf = np.array([0.05, 0.95, 0.95, 0.55, 0.55])
    correct = np.array([0, 1, 0, 1, 1])
    rel = reliability_bins(conf, correct, n_bins=10)
    # bins: {0.05}: |0 - 0.05|; {0.95, 0.95}: |0.5 - 0.95|; {0.55, 0.55}: |1 - 0.55|
    want = (1 * 0.05 + 2 * 0.45 + 2 * 0.45) / 5
    assert rel["ece"] == pytest.approx(want)
    assert sum(rel["counts"]) == 5
    assert rel["counts"][0] == 1 and rel["counts"][9] == 2 and rel["counts"][5] == 2
    assert rel["accuracies"][1] is None and rel["confidences"][9] == pytest.approx(0.95)
    assert len(rel["bin_centers"]) == 10 and rel["bin_centers"][0] == pytest.approx(0.05)


def test_bin_edges_are_right_closed():
    rel = reliability_bins(np.array([0.0, 0.2, 0.2000001, 1.0]), np.ones(4), n_bins=5)
    assert rel["counts"] == [2, 1, 0, 0, 1]


def test_calibrated_binary_is_small_and_overconfident_is_large():
    rng = np.random.default_rng(0)
    p1 = rng.random(20000)
    y = (rng.random(20000) < p1).astype(int)
    m = compute_metrics(y, np.column_stack([1 - p1, p1]), ["a", "b"], "binary", n_bootstrap=0)
    assert m["ece"] < 0.02
    assert sum(m["reliability"]["counts"]) == 20000
    assert len(m["reliability"]["bin_centers"]) == 15

    # 99% confident everywhere, right only 60% of the time -> ECE about 0.39
    y = rng.integers(0, 2, 5000)
    right = rng.random(5000) < 0.6
    pred = np.where(right, y, 1 - y)
    p1 = np.where(pred == 1, 0.99, 0.01)
    m = compute_metrics(y, np.column_stack([1 - p1, p1]), ["a", "b"], "binary", n_bootstrap=0)
    assert m["ece"] > 0.3


def test_calibrated_multiclass_and_multilabel_are_small():
    rng = np.random.default_rng(1)
    p = rng.dirichlet(np.ones(4), size=20000)
    y = (p.cumsum(axis=1) < rng.random((20000, 1))).sum(axis=1)
    m = compute_metrics(y, p, None, "multiclass", n_bootstrap=0)
    assert m["ece"] < 0.02

    p = rng.random((10000, 3))
    y = (rng.random((10000, 3)) < p).astype(int)
    m = compute_metrics(y, p, list("abc"), "multilabel", n_bootstrap=0)
    assert m["ece"] < 0.03
    assert m["ece"] == pytest.approx(np.mean(list(m["ece_per_class"].values())))
    assert sum(m["reliability"]["counts"]) == 30000

    # same labels, probabilities pushed to 0.01 / 0.99: observed rates are ~0.25 / ~0.75
    sharp = np.where(p > 0.5, 0.99, 0.01)
    m = compute_metrics(y, sharp, list("abc"), "multilabel", n_bootstrap=0)
    assert m["ece"] > 0.2
