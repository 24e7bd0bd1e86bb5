"""evaluate_predictions end to end: metrics.json, PNG figures and the offline HTML report."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from cxrkit.evaluate import compute_metrics, evaluate_predictions, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
FIGURES = ("confusion_matrix.png", "roc.png", "pr.png", "reliability.png")


def _binary(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p1 = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    return y, np.column_stack([1 - p1, p1])


def _assert_png(path):
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC
    assert len(data) > 5000


def _assert_offline(html: str, n_images: int):
    assert html.count("data:image/png;base64,") == n_images
    assert "http://" not in html and "https://" not in html
    assert "<script" not in html.lower()


def test_evaluate_predictions_binary_writes_everything(tmp_path):
    y, p = _binary()
    card = {
        "architecture": "resnet18",
        "input_size": 224,
        "class_names": ["normal", "pneumonia"],
        "training_data": "kermany_pneumonia (train split)",
        "preprocessing": {"resize": "pad"},
    }
    m = evaluate_predictions(
        y,
        p,
        ["normal", "pneumonia"],
        "binary",
        tmp_path / "out",
        thresholds=[0.4],
        model_card=card,
        n_bootstrap=200,
    )
    out = tmp_path / "out"
    assert json.loads((out / "metrics.json").read_text()) == m
    assert m["threshold"] == 0.4 and m["auc_ci"] is not None
    for name in FIGURES:
        _assert_png(out / name)
    assert not (out / "training_curves.png").exists()
    html = (out / "report.html").read_text(encoding="utf-8")
    _assert_offline(html, 4)
    for text in (
        "Sensitivity",
        "Specificity",
        "Threshold",
        "resnet18",
        "224",
        "kermany_pneumonia",
        "Balanced accuracy",
        "Expected calibration error",
        f"{m['auc']:.3f}",
        f"{m['auc_ci'][0]:.3f}",
        "pneumonia",
    ):
        assert text in html


def test_evaluate_predictions_multilabel_with_history(tmp_path):
    rng = np.random.default_rng(1)
    y = (rng.random((150, 4)) < 0.3).astype(int)
    p = 1 / (1 + np.exp(-(rng.normal(size=(150, 4)) + 2 * y - 1)))
    history = [
        {"epoch": 1, "train_loss": 0.9, "val_loss": 0.8, "val_auc": 0.70, "lr": 1e-3},
        {"epoch": 2, "train_loss": 0.7, "val_auc": 0.75},  # val_loss missing
        {"epoch": 3, "train_loss": 0.6, "val_loss": 0.65, "val_auc": None},
    ]
    names = ["Atelectasis", "Effusion", "Nodule", "Pneumothorax"]
    m = evaluate_predictions(y, p, names, "multilabel", tmp_path, n_bootstrap=100, history=history)
    for name in (*FIGURES, "training_curves.png"):
        _assert_png(tmp_path / name)
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    _assert_offline(html, 5)
    assert "Hamming accuracy" in html and "Pneumothorax" in html
    assert len(m["confusion_matrix"]) == 4


def test_evaluate_predictions_multiclass(tmp_path):
    rng = np.random.default_rng(2)
    y = rng.integers(0, 3, 120)
    logits = rng.normal(size=(120, 3))
    logits[np.arange(120), y] += 1.0
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    evaluate_predictions(
        y, p, ["normal", "bacterial", "viral"], "multiclass", tmp_path, n_bootstrap=50
    )
    for name in FIGURES:
        _assert_png(tmp_path / name)
    _assert_offline((tmp_path / "report.html").read_text(encoding="utf-8"), 4)


def test_degenerate_input_still_writes_report(tmp_path):
    y = np.ones(30, dtype=int)
    p1 = np.linspace(0.2, 0.9, 30)
    m = evaluate_predictions(
        y,
        np.column_stack([1 - p1, p1]),
        ["normal", "pneumonia"],
        "binary",
        tmp_path,
        n_bootstrap=50,
    )
    assert m["auc"] is None and m["warnings"]
    html = (tmp_path / "report.html").read_text(encoding="utf-8")
    assert "Warnings" in html and "n/a" in html
    for name in FIGURES:
        assert (tmp_path / name).read_bytes()[:8] == PNG_MAGIC


def test_report_escapes_strings(tmp_path):
    y, p = _binary()
    names = ["<b>normal</b>", "pneu & <i>monia</i>"]
    m = compute_metrics(y, p, names, "binary", n_bootstrap=0)
    path = write_report(
        tmp_path,
        m,
        {},
        title="<script>alert(1)</script>",
        model_card={"architecture": "<img src=x onerror=alert(1)>"},
    )
    html = path.read_text(encoding="utf-8")
    assert path.name == "report.html"
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert "<img src=x" not in html and "&lt;b&gt;normal&lt;/b&gt;" in html
    assert "pneu &amp; &lt;i&gt;monia" in html


def test_plot_training_curves_tolerates_missing_and_empty(tmp_path):
    from cxrkit.evaluate.plots import plot_training_curves

    _assert_png(plot_training_curves([{"epoch": 1}, {"train_loss": 1.0}], tmp_path / "a.png"))
    _assert_png(plot_training_curves([], tmp_path / "b.png"))


def test_import_does_not_load_matplotlib():
    code = "import sys, cxrkit.evaluate; print('matplotlib' in sys.modules)"
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert res.stdout.strip() == "False"


@pytest.mark.parametrize("task", ["binary", "multilabel"])
def test_plots_without_metrics(tmp_path, task):
    from cxrkit.evaluate.plots import plot_pr_curves, plot_roc_curves

    y, p = _binary()
    if task == "multilabel":
        y = np.column_stack([y, 1 - y])
    _assert_png(plot_roc_curves(y, p, ["a", "b"], task, tmp_path / "roc.png"))
    _assert_png(plot_pr_curves(y, p, ["a", "b"], task, tmp_path / "pr.png"))


def test_model_card_summary_from_nested_runner_card(tmp_path):
    y, p = _binary()
    m = compute_metrics(y, p, ["normal", "pneumonia"], "binary", n_bootstrap=0)
    card = {
        "architecture": "densenet121",
        "class_names": ["normal", "pneumonia"],
        "preprocessing": {"size": 320, "resize_mode": "pad"},
        "training": {"data": "/data/kermany", "epochs_run": 3, "config": {"lr": 0.001}},
        "metrics": {"test": {"auc": 0.5}},
    }
    html = write_report(tmp_path, m, None, model_card=card).read_text(encoding="utf-8")
    section = html.split("<h2>Model card</h2>", 1)[1]
    for text in (
        "densenet121",
        "Input size",
        "320 × 320 px",
        "Training data",
        "/data/kermany",
        "normal, pneumonia",
        "Training: epochs_run",
    ):
        assert text in section
    assert "Metrics" not in section
