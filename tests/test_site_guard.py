"""The calibration guard: a site change is written only when resampled halves show it earns it."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from cxrkit.card import ModelCard
from cxrkit.data.selection import add_selection_set, selection_flag
from cxrkit.errors import CxrkitError
from cxrkit.models.calibration import apply_card_calibration
from cxrkit.site.calibrate import robust_threshold
from cxrkit.site.guard import carried_threshold, guarded_fit
from cxrkit.site.resample import decision_objective, patient_halves, resampled_gain
from site_helpers import assert_one_line_error, run_cxr, tiny_model_file

CARD = ModelCard.from_dict(
    {
        "task": "binary",
        "class_names": ["normal", "pneumonia"],
        "preprocessing": {"size": 32},
        "thresholds": [0.5],
    }
)


def synthetic_site(seed: int, shift: float, n: int = 100) -> tuple[np.ndarray, ...]:
    """Labels, network probabilities and patients (two films each) of a site whose scores
    are the training site's (`shift` 0, best threshold 0.5) moved by `shift` in log-odds."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.6).astype(np.int64)
    z = rng.normal(size=n) + np.where(y == 1, 2.0, -2.0) + shift
    p1 = 1.0 / (1.0 + np.exp(-z))
    groups = np.array([f"patient{i // 2}" for i in range(n)])
    return y, np.column_stack([1.0 - p1, p1]), groups


def _decisions(fit, raw: np.ndarray) -> np.ndarray:
    card = CARD.merged(probability_calibration=fit.calibration)
    return apply_card_calibration(raw, card)[:, 1] >= fit.threshold


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("method", ["youden", "cost:1"])
def test_no_shift_keeps_the_threshold(seed: int, method: str) -> None:
    y, raw, groups = synthetic_site(seed, shift=0.0)
    fit = guarded_fit(y, raw, groups, CARD, method, "none", resamples=100)
    assert fit.decision == "kept" and fit.threshold == 0.5
    assert fit.resampled["gain"]["mean"] <= fit.resampled["gain"]["sd"]
    # a map may change when it lowers the ECE reliably, but no film changes label
    fit = guarded_fit(y, raw, groups, CARD, method, "temperature", resamples=100)
    assert fit.decision in ("kept", "probabilities")
    assert np.array_equal(_decisions(fit, raw), raw[:, 1] >= 0.5)


@pytest.mark.parametrize("shift", [2.5, -2.5])
def test_a_known_shift_moves_the_threshold_the_right_way(shift: float) -> None:
    y, raw, groups = synthetic_site(3, shift=shift)
    fit = guarded_fit(y, raw, groups, CARD, "youden", "none", resamples=100)
    assert fit.decision == "threshold"
    assert fit.resampled["gain"]["mean"] - fit.resampled["gain"]["sd"] > 0
    assert fit.resampled["accuracy_change"]["mean"] > 0.02
    assert (fit.threshold > 0.5) if shift > 0 else (fit.threshold < 0.5)
    old_acc = np.mean((raw[:, 1] >= 0.5) == y)
    assert np.mean(_decisions(fit, raw) == y) > old_acc


def test_halves_never_split_a_patient() -> None:
    rng = np.random.default_rng(0)
    groups = np.repeat([f"p{i}" for i in range(40)], rng.integers(1, 5, size=40))
    y = (np.array([int(g[1:]) for g in groups]) % 3 == 0).astype(np.int64)  # per patient
    halves = list(patient_halves(y, groups, resamples=50, seed=1))
    assert len(halves) == 50
    for fit_idx, held in halves:
        assert not set(groups[fit_idx]) & set(groups[held])
        assert len(fit_idx) + len(held) == len(y)
        assert set(y[fit_idx]) == set(y[held]) == {0, 1}
    assert len({tuple(f) for f, _ in halves}) > 10  # the halves differ
    with pytest.raises(CxrkitError, match="fewer than 4 patients"):
        next(patient_halves(y[:3], np.array(["a", "a", "b"]), 1))


def test_objectives() -> None:
    y = np.array([0, 0, 1, 1, 1])
    pred = np.array([0, 1, 1, 1, 0])
    assert decision_objective(y, pred, "youden") == pytest.approx(2 / 3 + 1 / 2 - 1)
    assert decision_objective(y, pred, "cost:3") == pytest.approx(-(3 * 1 + 1) / 5)
    assert decision_objective(y, pred, "sensitivity:0.9") == pytest.approx(2 / 3)


def test_sensitivity_target_is_always_applied_with_its_interval() -> None:
    y, raw, groups = synthetic_site(0, shift=0.0)
    fit = guarded_fit(y, raw, groups, CARD, "sensitivity:0.98", "none", resamples=50)
    assert fit.decision == "threshold"
    assert np.mean(raw[y == 1, 1] >= fit.threshold) >= 0.98
    lo, hi = fit.resampled["held_out_sensitivity"]["interval"]
    assert 0.0 < lo <= hi <= 1.0


def test_robust_threshold_sits_between_films_and_is_seeded() -> None:
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.6, 0.7, 0.8, 0.9])
    t = robust_threshold(y, s, "youden")
    assert 0.4 < t < 0.6 and t not in s
    assert robust_threshold(y, s, "youden") == t


def test_carried_threshold_keeps_every_label() -> None:
    y, raw, _ = synthetic_site(5, shift=1.0)
    for cal in (
        {"method": "temperature", "params": {"temperature": 0.4}},
        {"method": "platt", "params": {"a": 2.0, "b": -1.0}},
    ):
        t = carried_threshold(raw, CARD, cal)
        assert t is not None
        new = apply_card_calibration(raw, CARD.merged(probability_calibration=cal))[:, 1] >= t
        assert np.array_equal(new, raw[:, 1] >= 0.5)
    reversed_map = {"method": "platt", "params": {"a": -1.0, "b": 0.0}}
    assert carried_threshold(raw, CARD, reversed_map) is None


def test_resampled_gain_reports_one_entry_per_resample() -> None:
    y, raw, groups = synthetic_site(0, shift=1.5)
    est = resampled_gain(y, raw, groups, CARD, "youden", "none", resamples=30)
    assert len(est.gain) == len(est.accuracy_change) == 30
    summary = est.summary()
    assert summary["resamples"] == 30 and summary["films_fitted_per_resample"] == 50
    assert summary["probability_hurt"] == pytest.approx(np.mean(est.gain < 0))


def test_selection_sets_merge_and_flag() -> None:
    sets = add_selection_set(None, "site", "abc", ["threshold method"])
    sets = add_selection_set(sets, "site", "abc", ["recipe", "threshold method"])
    assert sets == [
        {"name": "site", "labels_sha256": "abc", "used_for": ["threshold method", "recipe"]}
    ]
    flag = selection_flag(CARD.merged(selection_sets=sets), "abc")
    assert flag["used_for_selection"] and "optimistic" in flag["note"]
    assert not selection_flag(CARD.merged(selection_sets=sets), "other")["used_for_selection"]
    assert not selection_flag(CARD, "abc")["used_for_selection"]


def test_a_site_without_patient_ids_is_refused_unless_asked(site_dir: Path, tmp_path: Path) -> None:
    with (site_dir / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))[:40]
    site = tmp_path / "no_patients"
    site.mkdir()
    with (site / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label"])
        w.writeheader()
        w.writerows({"path": str(site_dir / r["path"]), "label": r["label"]} for r in rows)
    src = tiny_model_file(tmp_path / "m.safetensors")
    args = ["calibrate", src, "--data", site, "--out", tmp_path / "c.safetensors",
            "--n-bootstrap", "0", "--resamples", "20"]  # fmt: skip
    code, _, err = run_cxr(*args)
    assert_one_line_error(code, err, "patient_id", "--group-by-file")
    assert not (tmp_path / "c.safetensors").exists()
    code, _, err = run_cxr(*args, "--group-by-file")
    assert code == 0, err
    assert "no measurable gain" in err or "CHANGED the model" in err
