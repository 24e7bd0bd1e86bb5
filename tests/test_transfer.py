"""Site transfer: external sets beside the internal split, OOD flags, drift report."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrkit.evaluate.drift import drift_summary
from cxrkit.evaluate.proportions import wilson_interval
from cxrkit.evaluate.transfer import transfer_warnings
from cxrkit.models.model_file import read_card, read_extra_tensors
from cxrkit.models.ood import OodScorer, fit_feature_reference, load_feature_reference

EFFNET = "efficientnet_lite0_imagenet/efficientnet-lite0-57934424.pth"


def test_wilson_interval_matches_the_textbook_values() -> None:
    # Brown, Cai & DasGupta (2001): 95 % Wilson interval of 50/100 is 0.404-0.596.
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    low, high = wilson_interval(100, 100)
    assert high == 1.0 and 0.95 < low < 0.97
    assert wilson_interval(0, 0) is None


def test_transfer_warnings_name_the_drop_and_the_rate_gap() -> None:
    internal = {"auc": 0.99, "accuracy": 0.96}
    site = {"auc": 0.95, "accuracy": 0.85, "predicted_positive_rate": 0.8, "prevalence": 0.6}
    text = " ".join(transfer_warnings(internal, site, "siteA"))
    assert "AUC 0.950 vs 0.990" in text and "accuracy 0.850" in text and "80%" in text
    assert transfer_warnings(internal, {"auc": 0.985, "accuracy": 0.95}, "siteB") == []


def test_feature_reference_flags_shifted_codes_and_torch_agrees() -> None:
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(8, 64))
    train = rng.normal(size=(400, 8)) @ basis + 0.1 * rng.normal(size=(400, 64))
    val = rng.normal(size=(200, 8)) @ basis + 0.1 * rng.normal(size=(200, 64))
    test = rng.normal(size=(500, 8)) @ basis + 0.1 * rng.normal(size=(500, 64))
    shifted = test + rng.normal(size=(1, 64)) * 1.0  # another "site": off the training subspace
    ref = fit_feature_reference(train, val, components=8, quantile=0.99)
    _, flagged_test = ref.flags(test)
    _, flagged_shifted = ref.flags(shifted)
    assert flagged_test.mean() <= 0.05
    assert flagged_shifted.mean() >= 0.9
    scorer = OodScorer(ref)
    got = scorer(torch.as_tensor(shifted, dtype=torch.float32)).numpy()
    np.testing.assert_allclose(got, ref.score(shifted), rtol=1e-4, atol=1e-4)


def test_drift_summary_warns_when_many_films_are_flagged() -> None:
    card = {
        "class_names": ["normal", "pneumonia"],
        "task": "binary",
        "training": {"class_counts": {"normal": 50, "pneumonia": 50}},
        "ood": {"threshold": 1.0, "quantile": 0.99},
        "preprocessing": {"size": 32},  # the rest of a valid card
    }
    rows = [
        {"label": "pneumonia", "ood_score": 2.0, "out_of_distribution": True} for _ in range(8)
    ] + [{"label": "normal", "ood_score": 0.5, "out_of_distribution": False}] * 2
    rows.append({"path": "x.png", "error": "unreadable"})
    s = drift_summary(rows, card)
    assert s["ood_flagged"] == 8 and s["ood_flagged_rate"] == pytest.approx(0.8)
    assert s["unreadable"] == 1 and s["predicted_rate"]["pneumonia"] == pytest.approx(0.8)
    assert any("out of distribution" in w for w in s["warnings"])
    assert any("'pneumonia' is predicted for 80%" in w for w in s["warnings"])


def _cxr(*args: str | Path) -> tuple[int, str]:
    """Run `cxr ARGS...` in-process (module fixtures cannot use capsys); (exit code, stderr)."""
    import sys
    from io import StringIO
    from unittest import mock

    from cxrkit.cli.app import main

    err = StringIO()
    with mock.patch.object(sys, "argv", ["cxr", *map(str, args)]), mock.patch("sys.stderr", err):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, err.getvalue()


@pytest.fixture(scope="module")
def effnet_run(
    kermany_dir: Path, weights_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """EfficientNet-Lite0 codes at 128 px + a linear head on 400 Kermany films, with the
    external Kermany site set scored beside the test split."""
    root = tmp_path_factory.mktemp("transfer")
    code, err = _cxr(
        "train", "--data", kermany_dir, "--out", root / "run",
        "--backbone", "efficientnet_lite0", "--weights", weights_dir / EFFNET,
        "--image-size", "128", "--max-images", "400", "--epochs", "8", "--num-workers", "0",
        "--cache-dir", root / "cache", "--external", kermany_dir.parent / "kermany_site",
        "--set", "n_bootstrap=50", "--set", "feature_augment_copies=0",
        "--set", "head_hidden=null", "--no-progress",
    )  # fmt: skip
    assert code == 0, err
    return root / "run"


def test_train_scores_the_external_set_beside_the_test_split(effnet_run: Path) -> None:
    rows = json.loads((effnet_run / "transfer.json").read_text())
    assert [r["set"] for r in rows] == ["internal test split", "kermany_site"]
    assert rows[1]["n"] == 100 and rows[1]["prevalence"] == pytest.approx(0.62)
    for key in ("auc", "auc_ci", "accuracy", "accuracy_ci", "sensitivity", "specificity", "ece"):
        assert rows[1][key] is not None, key
    assert 0.0 <= rows[1]["predicted_positive_rate"] <= 1.0
    html = (effnet_run / "report.html").read_text()
    assert "Internal vs external" in html and "kermany_site" in html
    assert (effnet_run / "external" / "kermany_site" / "metrics.json").is_file()
    card = read_card(effnet_run).to_dict()
    assert card["metrics"]["external"]["kermany_site"]["n"] == 100
    assert card["training"]["class_counts"]["pneumonia"] > 0
    assert set(read_extra_tensors(effnet_run, "ood.")) >= {"ood.mean", "ood.components"}


def test_evaluate_puts_a_site_beside_the_cards_internal_figures(
    effnet_run: Path, kermany_dir: Path, tmp_path: Path
) -> None:
    site = kermany_dir.parent / "kermany_site"
    code, err = _cxr("evaluate", effnet_run, "--data", site, "--out", tmp_path / "ev",
                     "--n-bootstrap", "20", "--num-workers", "0")  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "ev" / "transfer.json").read_text())
    assert [r["set"] for r in rows] == ["internal test split (model card)", "kermany_site"]
    assert "Internal vs external" in (tmp_path / "ev" / "report.html").read_text()


def _flag_rate(run: Path, files: list[Path], tmp: Path) -> float:
    out = tmp / "preds.csv"
    code, err = _cxr("predict", run, *files, "--out", out, "--num-workers", "0")
    assert code == 0, err
    with out.open(newline="") as fh:
        flags = [r["out_of_distribution"] for r in csv.DictReader(fh) if not r["error"]]
    assert flags and set(flags) <= {"True", "False"}
    return sum(f == "True" for f in flags) / len(flags)


def _sample(folder: Path, n: int, where: dict[str, str] | None = None) -> list[Path]:
    with (folder / "labels.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if all(r[k] == v for k, v in (where or {}).items())]
    rng = np.random.default_rng(0)
    return [folder / rows[i]["path"] for i in sorted(rng.choice(len(rows), n, replace=False))]


def test_other_sources_are_flagged_far_more_often_than_held_out_films(
    effnet_run: Path, kermany_dir: Path, nih_dir: Path, tmp_path: Path
) -> None:
    with (effnet_run / "split.csv").open(newline="") as fh:
        held_out = [kermany_dir / r["path"] for r in csv.DictReader(fh) if r["split"] == "test"]
    rate_held_out = _flag_rate(effnet_run, held_out, tmp_path)
    rate_nih = _flag_rate(effnet_run, _sample(nih_dir, 60), tmp_path)
    v7 = kermany_dir.parent / "lungmasks_v7"
    rate_v7 = _flag_rate(effnet_run, _sample(v7, 60), tmp_path)
    assert rate_held_out <= 0.05
    assert rate_nih >= max(5 * rate_held_out, 0.25), (rate_nih, rate_held_out)
    assert rate_v7 >= max(5 * rate_held_out, 0.25), (rate_v7, rate_held_out)


def test_predict_report_and_onnx_carry_the_flag(
    effnet_run: Path, nih_dir: Path, tmp_path: Path
) -> None:
    files = _sample(nih_dir, 6)
    code, err = _cxr("predict", effnet_run, *files, "--out", tmp_path / "p.json",
                     "--num-workers", "0", "--report", tmp_path / "drift")  # fmt: skip
    assert code == 0, err
    rows = json.loads((tmp_path / "p.json").read_text())
    flagged = [r for r in rows if r["out_of_distribution"]]
    assert flagged, rows
    for r in flagged:  # the label and probabilities stay, the flag sits beside them
        assert r["label"] and r["probabilities"] and "out of distribution" in r["warning"]
    drift = json.loads((tmp_path / "drift" / "drift.json").read_text())
    assert drift["films"] == 6 and drift["ood_flagged"] == len(flagged)
    assert (tmp_path / "drift" / "drift.html").is_file()

    code, err = _cxr("predict", effnet_run, *files, "--out", tmp_path / "o.json",
                     "--num-workers", "0", "--runtime", "onnx")  # fmt: skip
    assert code == 0, err
    onnx_rows = json.loads((tmp_path / "o.json").read_text())
    for a, b in zip(rows, onnx_rows, strict=True):
        assert a["out_of_distribution"] == b["out_of_distribution"]
        assert a["ood_score"] == pytest.approx(b["ood_score"], abs=2e-3)


def test_the_reference_loads_back_from_the_model_file(effnet_run: Path) -> None:
    ref = load_feature_reference(effnet_run)
    card = read_card(effnet_run).to_dict()
    assert ref is not None and ref.threshold == pytest.approx(card["ood"]["threshold"], rel=1e-5)


def test_the_card_names_its_data_and_weights_without_local_paths(
    effnet_run: Path, kermany_dir: Path
) -> None:
    card = read_card(effnet_run).to_dict()
    text = json.dumps(card)
    assert (
        str(kermany_dir.parent) not in text
        and "/work/" not in text
        and str(Path.home()) not in text
    )
    data = card["training"]["data"]
    assert data["name"] == "kermany_pneumonia" and data["n_films"] == 400
    assert len(data["labels_sha256"]) == 64 and sum(data["class_counts"].values()) == 400
    assert card["training"]["weights"]["file"] == Path(EFFNET).name
