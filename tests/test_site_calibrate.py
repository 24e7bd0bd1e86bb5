"""`cxr calibrate`: a new model file whose card alone changes; cost/sensitivity thresholds."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from safetensors import safe_open

from cxrkit.evaluate import EvaluationError, choose_threshold
from cxrkit.evaluate.thresholds import parse_threshold_method
from cxrkit.models.calibration import apply_card_calibration
from cxrkit.models.model_file import read_card
from site_helpers import assert_one_line_error, run_cxr, sha256, tensors, tiny_model_file, to_refit


@pytest.fixture(scope="module")
def calibrated(site_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A tiny model calibrated on kermany_site (Platt, cost 3), with the JSON report."""
    model = to_refit(tmp_path_factory.mktemp("cal"))
    code, stdout, err = run_cxr(
        "calibrate", model["src"], "--data", site_dir, "--out", model["out"], "--method", "cost:3",
        "--probabilities", "platt", "--n-bootstrap", "200", "--json",
    )  # fmt: skip
    assert code == 0, err
    return {**model, "report": json.loads(stdout), "site": site_dir}


def test_calibrate_changes_only_the_card(calibrated: dict) -> None:
    before, after = tensors(calibrated["src"]), tensors(calibrated["out"])
    assert before.keys() == after.keys()
    for key, value in before.items():
        assert value.dtype == after[key].dtype and value.equal(after[key]), key
    assert sha256(calibrated["src"]) == calibrated["digest"]  # the original file is untouched


def test_the_card_records_the_site_calibration(calibrated: dict) -> None:
    old_card, new_card = read_card(calibrated["src"]), read_card(calibrated["out"])
    old, new = old_card.to_dict(), new_card.to_dict()
    rec = new_card.provenance.site_calibration
    assert new_card.provenance.training_thresholds == old_card.thresholds
    assert new_card.decision.method == old_card.decision.method
    assert new_card.thresholds == (rec["threshold"],)
    assert rec["fitted_probability_calibration"]["method"] == "platt"
    assert rec["model_threshold"] == old_card.thresholds[0]
    if rec["decision"] == "kept":  # the card decides exactly as before
        assert new_card.thresholds == old_card.thresholds
        assert new_card.calibration.probability is None and not rec["changed"]
    else:
        assert new_card.calibration.probability == rec["fitted_probability_calibration"]
    res = rec["resampled"]
    assert res["resamples"] == 200 and res["objective"] == "expected cost saved per film"
    assert res["gain"]["interval"][0] <= res["gain"]["mean"] <= res["gain"]["interval"][1]
    assert 0.0 <= res["probability_hurt"] <= 1.0
    assert (rec["decision"] == "threshold") == (res["gain"]["mean"] > res["gain"]["sd"])
    assert rec["set"] == "kermany_site" and rec["n_films"] == 100
    assert rec["class_counts"] == {"normal": 38, "pneumonia": 62}
    assert rec["labels_sha256"] == sha256(calibrated["site"] / "labels.csv")
    assert rec["method"] == "cost:3" and rec["probabilities"] == "platt"
    assert rec["date"] and rec["cxrkit_version"]
    for side in ("before", "after"):
        figs = rec["cross_validated"][side]
        for key in (
            "auc",
            "auc_ci",
            "accuracy",
            "accuracy_ci",
            "sensitivity",
            "specificity",
            "ece",
        ):
            assert key in figs, (side, key)
        assert figs["true_positive_rate"] == pytest.approx(0.62)
    assert len(rec["fold_thresholds"]) == rec["folds"] == 5
    assert calibrated["report"]["site_calibration"] == rec
    # no absolute path anywhere in what the site calibration writes
    text = json.dumps([rec, new_card.calibration.probability])
    assert str(calibrated["site"]) not in text and "/" not in rec["set"]
    for key, value in old.items():  # everything else in the card is as it was
        if key not in ("thresholds", "selection_sets"):
            assert new[key] == value, key


def test_card_calibration_reaches_predict(calibrated: dict) -> None:
    from cxrkit.classifier.api import predict

    films = sorted((calibrated["site"] / "images").glob("*.png"))[:4]
    raw = predict(calibrated["src"], films, screen=False, num_workers=0)
    cal = predict(calibrated["out"], films, screen=False, num_workers=0)
    card = read_card(calibrated["out"])
    p_raw = np.array([[r["probabilities"][c] for c in card.class_names] for r in raw])
    p_cal = np.array([[r["probabilities"][c] for c in card.class_names] for r in cal])
    np.testing.assert_allclose(p_cal, apply_card_calibration(p_raw, card), atol=1e-5)
    t = card.thresholds[0]
    assert [r["label"] for r in cal] == ["pneumonia" if p >= t else "normal" for p in p_cal[:, 1]]


def test_too_small_site_set_warns(site_dir: Path, tmp_path: Path) -> None:
    with (site_dir / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    few = [r for r in rows if r["label"] == "normal"][:8] + [
        r for r in rows if r["label"] == "pneumonia"
    ][:8]
    small = tmp_path / "tiny_site"
    small.mkdir()
    with (small / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "patient_id"])
        w.writeheader()
        for r in few:
            w.writerow(
                {
                    "path": str(site_dir / r["path"]),
                    "label": r["label"],
                    "patient_id": r["patient_id"],
                }
            )
    src = tiny_model_file(tmp_path / "m.safetensors")
    code, out, err = run_cxr(
        "calibrate",
        src,
        "--data",
        small,
        "--out",
        tmp_path / "c.safetensors",
        "--folds",
        "3",
        "--n-bootstrap",
        "100",
        "--method",
        "sensitivity:0.9",
        "--probabilities",
        "isotonic",
    )
    assert code == 0, err
    assert "warning:" in err and "fewer than 30" in err
    assert "after (fitted change, cross-validated)" in err and "positive rate" in err
    # a target sensitivity is a constraint the user asked for: applied, its interval printed
    assert "held-out sensitivity of the fitted threshold" in err and "CHANGED the model" in err
    card = read_card(tmp_path / "c.safetensors")
    rec = card.provenance.site_calibration
    assert rec["decision"] == "threshold" and card.thresholds == (rec["fitted_threshold"],)
    assert card.calibration.method == "isotonic"
    assert card.provenance.selection_sets[0]["name"] == "tiny_site"
    assert rec["set"] == "tiny_site" and rec["n_films"] == 16
    assert any("fewer than 30" in w for w in rec["warnings"])


def test_calibrate_errors_are_one_line(tmp_path: Path, site_dir: Path) -> None:
    src = tiny_model_file(tmp_path / "m.safetensors")
    code, _, err = run_cxr(
        "calibrate", src, "--data", tmp_path / "nowhere", "--out", tmp_path / "o.safetensors"
    )
    assert_one_line_error(code, err, "nowhere", "no such")
    code, _, err = run_cxr("calibrate", src, "--data", site_dir, "--out", src)
    assert_one_line_error(code, err, "original stays")
    code, _, err = run_cxr(
        "calibrate", src, "--data", site_dir, "--out", tmp_path / "o.safetensors", "--method", "f1"
    )
    assert_one_line_error(code, err, "threshold method")
    code, _, err = run_cxr(
        "calibrate",
        src,
        "--data",
        site_dir,
        "--out",
        tmp_path / "o.safetensors",
        "--probabilities",
        "beta",
    )
    assert_one_line_error(code, err, "--probabilities beta")
    assert not (tmp_path / "o.safetensors").exists()


Y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
S = np.array([0.1, 0.2, 0.3, 0.5, 0.55, 0.45, 0.6, 0.7, 0.8, 0.9])


def _least_cost(y: np.ndarray, s: np.ndarray, ratio: float) -> float:
    best, best_t = np.inf, None
    for t in [*np.sort(np.unique(s))[::-1]]:
        pred = s >= t
        cost = ratio * np.sum(~pred & (y == 1)) + np.sum(pred & (y == 0))
        if cost < best:
            best, best_t = cost, t
    return float(best_t)


@pytest.mark.parametrize("ratio", [0.2, 1.0, 3.0, 10.0])
def test_cost_threshold_minimises_expected_cost(ratio: float) -> None:
    assert choose_threshold(Y, S, method=f"cost:{ratio}") == pytest.approx(_least_cost(Y, S, ratio))
    rng = np.random.default_rng(1)
    y = (rng.random(200) < 0.4).astype(int)
    s = np.round(rng.normal(size=200) + 1.5 * y, 3)
    assert choose_threshold(y, s, method=f"cost:{ratio}") == pytest.approx(_least_cost(y, s, ratio))


def test_a_costlier_miss_lowers_the_threshold() -> None:
    assert choose_threshold(Y, S, method="cost:10") <= choose_threshold(Y, S, method="cost:0.1")
    assert choose_threshold(Y, S, method="cost:10") == pytest.approx(0.45)  # no missed positive


def test_sensitivity_spelling_and_training_names() -> None:
    assert choose_threshold(Y, S, method="sensitivity:0.8") == choose_threshold(
        Y, S, method="sensitivity", target_sensitivity=0.8
    )
    assert parse_threshold_method("youden")[0] == "youden"
    assert parse_threshold_method("sensitivity", 0.9) == ("sensitivity", 0.9)
    for bad in ("cost", "cost:-1", "cost:x", "sensitivity:1.5", "youden:2", "f1"):
        with pytest.raises(EvaluationError):
            parse_threshold_method(bad)


def test_training_config_takes_the_same_spellings() -> None:
    from cxrkit.errors import CxrkitError
    from cxrkit.train import load_config

    assert load_config(None, {"threshold_method": "cost:4"}).threshold_method == "cost:4"
    assert load_config(None, {"threshold_method": "sensitivity:0.9"}).threshold_method
    with pytest.raises(CxrkitError, match="threshold method"):
        load_config(None, {"threshold_method": "cost:x"})


def test_platt_slope_is_readable_from_the_report(calibrated: dict) -> None:
    with safe_open(str(calibrated["out"]), framework="pt") as fh:
        meta = fh.metadata()
    assert "cxrkit_card" in meta
    params = calibrated["report"]["site_calibration"]["fitted_probability_calibration"]["params"]
    assert set(params) == {"a", "b"}
