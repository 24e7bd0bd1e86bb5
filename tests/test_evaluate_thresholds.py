"""Operating-point selection: Youden's J and target sensitivity on hand-made examples."""

from __future__ import annotations

import numpy as np
import pytest

from cxrkit.evaluate import EvaluationError, choose_threshold, choose_thresholds, compute_metrics

# Negatives and positives overlap at 0.5 / 0.55 vs 0.45: the best split is at 0.6
# (sensitivity 4/5, specificity 5/5, J = 0.8); 0.45 gives sensitivity 1, specificity 3/5.
Y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
S = np.array([0.1, 0.2, 0.3, 0.5, 0.55, 0.45, 0.6, 0.7, 0.8, 0.9])


def _youden_brute_force(y, s):
    best, best_t = -1.0, None
    for t in np.sort(np.unique(s))[::-1]:
        pred = s >= t
        j = pred[y == 1].mean() + (~pred[y == 0]).mean() - 1.0
        if j > best:
            best, best_t = j, t
    return best_t


def test_youden_hand_example():
    assert choose_threshold(Y, S) == pytest.approx(0.6)
    assert choose_threshold(Y, S, method="youden") == _youden_brute_force(Y, S)


def test_youden_matches_brute_force_on_random_data():
    rng = np.random.default_rng(0)
    y = (rng.random(300) < 0.3).astype(int)
    s = np.round(rng.normal(size=300) + y, 3)
    assert choose_threshold(y, s) == pytest.approx(_youden_brute_force(y, s))


@pytest.mark.parametrize("target,expected", [(1.0, 0.45), (0.9, 0.45), (0.8, 0.6), (0.6, 0.7)])
def test_target_sensitivity_gives_highest_threshold_meeting_it(target, expected):
    t = choose_threshold(Y, S, method="sensitivity", target_sensitivity=target)
    assert t == pytest.approx(expected)
    assert (S[Y == 1] >= t).mean() >= target


def test_threshold_errors():
    with pytest.raises(EvaluationError):
        choose_threshold(np.zeros(5, dtype=int), np.linspace(0, 1, 5))
    with pytest.raises(EvaluationError):
        choose_threshold(Y, S, method="f1")
    with pytest.raises(EvaluationError):
        choose_threshold(Y, S[:-1])


def test_choose_thresholds_per_task():
    p = np.column_stack([1 - S, S])
    assert choose_thresholds(Y, p, "binary") == [pytest.approx(0.6)]
    assert choose_thresholds(Y, p, "multiclass") == []
    y_ml = np.column_stack([Y, 1 - Y])
    p_ml = np.column_stack([S, 1 - S])
    got = choose_thresholds(y_ml, p_ml, "multilabel", method="sensitivity", target_sensitivity=1.0)
    assert got[0] == pytest.approx(0.45)
    assert (p_ml[y_ml[:, 1] == 1, 1] >= got[1]).all()


def test_choose_thresholds_degenerate_class_falls_back_with_warning():
    y_ml = np.column_stack([Y, np.zeros_like(Y)])
    p_ml = np.column_stack([S, S])
    with pytest.warns(UserWarning, match="one outcome"):
        got = choose_thresholds(y_ml, p_ml, "multilabel", class_names=["a", "b"])
    assert got == [pytest.approx(0.6), 0.5]


def test_validation_threshold_applied_to_test():
    t = choose_thresholds(Y, np.column_stack([1 - S, S]), "binary")
    rng = np.random.default_rng(1)
    y_test = rng.integers(0, 2, 50)
    s_test = np.clip(0.3 * y_test + rng.random(50) * 0.7, 0, 1)
    m = compute_metrics(
        y_test,
        np.column_stack([1 - s_test, s_test]),
        ["n", "p"],
        "binary",
        thresholds=t,
        n_bootstrap=0,
    )
    assert m["threshold"] == pytest.approx(0.6)
    tp = np.sum((s_test >= 0.6) & (y_test == 1))
    assert m["sensitivity"] == pytest.approx(tp / np.sum(y_test == 1))


def test_midpoint_sits_halfway_in_log_odds_between_the_class_medians() -> None:
    from cxrkit.evaluate.thresholds import choose_threshold

    y = np.array([0, 0, 0, 1, 1, 1])
    p = np.array([0.01, 0.1, 0.2, 0.8, 0.9, 0.99])  # medians 0.1 and 0.9: log-odds -2.2, +2.2
    assert choose_threshold(y, p, "midpoint") == pytest.approx(0.5)
    p2 = np.array([0.001, 0.01, 0.3, 0.6, 0.9, 0.999])  # medians 0.01 and 0.9
    expected = 1 / (1 + np.exp(-0.5 * (np.log(0.01 / 0.99) + np.log(0.9 / 0.1))))
    assert choose_threshold(y, p2, "midpoint") == pytest.approx(expected)


def test_midpoint_keeps_a_margin_when_the_negatives_shift_up() -> None:
    from cxrkit.evaluate.thresholds import choose_threshold

    rng = np.random.default_rng(0)
    # a few positives look normal (mild disease): Youden reaches down for them
    neg, pos = rng.normal(-4, 1, 400), np.r_[rng.normal(4, 1, 380), rng.normal(-1.5, 1, 20)]
    y = np.r_[np.zeros(400), np.ones(400)].astype(int)
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    p = sig(np.r_[neg, pos])
    t_youden, t_mid = (choose_threshold(y, p, m) for m in ("youden", "midpoint"))
    shifted_neg = sig(neg + 2.5)  # another site: normal films look more like pneumonia
    assert np.mean(shifted_neg >= t_mid) < 0.2 * np.mean(shifted_neg >= t_youden)
    with pytest.raises(EvaluationError):
        choose_threshold(y, p, "midpoint:3")
