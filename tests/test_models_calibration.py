"""`apply_card_calibration`: the card's probability adjustments, checked against their formulas."""

from __future__ import annotations

import numpy as np
import pytest

from cxrkit.models.calibration import apply_card_calibration

RNG = np.random.default_rng(0)
P1 = RNG.uniform(0.01, 0.99, 50)
PROBS = np.column_stack([1 - P1, P1]).astype(np.float32)
BASE = {
    "task": "binary", "class_names": ["normal", "pneumonia"], "thresholds": [0.5],
    "preprocessing": {"size": 32},
}  # fmt: skip


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


@pytest.mark.parametrize(
    "extra", [{}, {"probability_calibration": {"method": "none"}}, {"prior_shift": None}]
)
def test_a_card_without_adjustments_gives_identical_probabilities(extra: dict) -> None:
    out = apply_card_calibration(PROBS, {**BASE, **extra})
    assert out.dtype == PROBS.dtype
    assert out.tobytes() == PROBS.tobytes()


def test_temperature_scales_the_binary_logit() -> None:
    card = {
        **BASE,
        "probability_calibration": {"method": "temperature", "params": {"temperature": 2.0}},
    }
    out = apply_card_calibration(PROBS, card)
    logit = np.log(P1 / (1 - P1))
    np.testing.assert_allclose(out[:, 1], _sigmoid(logit / 2.0), atol=1e-6)
    np.testing.assert_allclose(out.sum(1), 1.0, atol=1e-6)
    assert out.dtype == np.float32


def test_temperature_on_three_classes_is_a_tempered_softmax() -> None:
    p = RNG.dirichlet([1, 1, 1], size=20)
    card = {
        "task": "multiclass",
        "class_names": ["a", "b", "c"],
        "preprocessing": {"size": 32},
        "probability_calibration": {"method": "temperature", "params": {"temperature": 0.5}},
    }
    want = p**2 / (p**2).sum(1, keepdims=True)
    np.testing.assert_allclose(apply_card_calibration(p, card), want, rtol=1e-9)


def test_platt_and_isotonic() -> None:
    platt = {
        **BASE,
        "probability_calibration": {"method": "platt", "params": {"a": 0.7, "b": -0.3}},
    }
    logit = np.log(P1 / (1 - P1))
    np.testing.assert_allclose(
        apply_card_calibration(PROBS, platt)[:, 1], _sigmoid(0.7 * logit - 0.3), atol=1e-6
    )
    iso = {
        **BASE,
        "probability_calibration": {
            "method": "isotonic",
            "params": {"x": [0.2, 0.8], "y": [0.1, 0.9]},
        },
    }
    out = apply_card_calibration(PROBS, iso)
    np.testing.assert_allclose(out[:, 1], np.interp(P1, [0.2, 0.8], [0.1, 0.9]), atol=1e-6)
    np.testing.assert_allclose(out[:, 0], 1 - out[:, 1], atol=1e-6)


def test_prior_shift_follows_saerens() -> None:
    card = {**BASE, "prior_shift": {"train": [0.5, 0.5], "site": [0.2, 0.8]}}
    out = apply_card_calibration(PROBS, card)
    num = P1 * 0.8 / 0.5
    want = num / (num + (1 - P1) * 0.2 / 0.5)
    np.testing.assert_allclose(out[:, 1], want, atol=1e-6)
    same = {**BASE, "prior_shift": {"train": [0.3, 0.7], "site": [0.3, 0.7]}}
    np.testing.assert_allclose(apply_card_calibration(PROBS, same), PROBS, atol=1e-6)


def test_calibration_then_prior_shift() -> None:
    cal = {"method": "temperature", "params": {"temperature": 3.0}}
    both = {
        **BASE,
        "probability_calibration": cal,
        "prior_shift": {"train": [0.5, 0.5], "site": [0.4, 0.6]},
    }
    first = apply_card_calibration(PROBS, {**BASE, "probability_calibration": cal})
    then = apply_card_calibration(first, {**BASE, "prior_shift": both["prior_shift"]})
    np.testing.assert_allclose(apply_card_calibration(PROBS, both), then, atol=1e-6)
