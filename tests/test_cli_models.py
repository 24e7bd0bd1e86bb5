"""`cxr predict` and `cxr evaluate` on a small trained model: bad files, DICOM, sklearn parity."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
)

from cxrkit.cli.app import main
from cxrkit.models.model_file import read_card
from dicom_factory import png_pixels, write_dicom

TOL = 1e-6


def run_cxr(*args: str | Path) -> int:
    """Run `cxr ARGS...` in this process through the console entry point; returns the exit code."""
    with mock.patch.object(sys, "argv", ["cxr", *map(str, args)]):
        try:
            main()
        except SystemExit as exc:
            return int(exc.code or 0)
    return 0


@pytest.fixture(scope="module")
def run_dir(nih_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small_cnn (features mode) trained for one epoch on 48 NIH1000 films."""
    root = tmp_path_factory.mktemp("model")
    code = run_cxr(
        "train",
        "--data",
        nih_dir,
        "--out",
        root / "run",
        "--backbone",
        "small_cnn",
        "--mode",
        "features",
        "--image-size",
        "32",
        "--max-images",
        "48",
        "--epochs",
        "2",
        "--num-workers",
        "0",
        "--cache-dir",
        root / "cache",
        "--set",
        "n_bootstrap=0",
        "--no-progress",
    )
    assert code == 0
    return root / "run"


def _split_paths(run: Path, data: Path, split: str) -> list[Path]:
    with (run / "split.csv").open(newline="") as fh:
        return [data / r["path"] for r in csv.DictReader(fh) if r["split"] == split]


@pytest.mark.slow
def test_evaluate_metrics_equal_sklearn_on_predict_output(
    run_dir: Path, nih_dir: Path, tmp_path: Path
) -> None:
    films = _split_paths(run_dir, nih_dir, "test")
    assert len(films) >= 4
    preds_json = tmp_path / "preds.json"
    assert run_cxr("predict", run_dir, *films, "--out", preds_json, "--num-workers", "0") == 0
    ev = tmp_path / "eval"
    code = run_cxr(
        "evaluate",
        run_dir / "model.safetensors",
        "--data",
        nih_dir,
        "--out",
        ev,
        "--split",
        "test",
        "--split-file",
        run_dir / "split.csv",
        "--n-bootstrap",
        "0",
        "--num-workers",
        "0",
    )
    assert code == 0
    metrics = json.loads((ev / "metrics.json").read_text())

    card = read_card(run_dir).to_dict()
    classes, threshold = card["class_names"], card["thresholds"][0]
    with (nih_dir / "labels.csv").open(newline="") as fh:
        label_of = {str(nih_dir / r["path"]): r["label"] for r in csv.DictReader(fh)}
    preds = json.loads(preds_json.read_text())
    assert [p["path"] for p in preds] == [str(f) for f in films]
    y = np.array([classes.index(label_of[p["path"]]) for p in preds])
    p1 = np.array([p["probabilities"][classes[1]] for p in preds])
    pred = (p1 >= threshold).astype(int)
    assert [p["label"] for p in preds] == [classes[k] for k in pred]

    assert metrics["n"] == len(films)
    assert metrics["thresholds"] == pytest.approx([threshold])
    assert metrics["accuracy"] == pytest.approx(accuracy_score(y, pred), abs=TOL)
    assert metrics["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred), abs=TOL)
    assert metrics["confusion_matrix"] == confusion_matrix(y, pred, labels=[0, 1]).tolist()
    assert metrics["auc"] == pytest.approx(roc_auc_score(y, p1), abs=TOL)
    tn, fp, fn, tp = confusion_matrix(y, pred, labels=[0, 1]).ravel()
    assert metrics["sensitivity"] == pytest.approx(tp / (tp + fn), abs=TOL)
    assert metrics["specificity"] == pytest.approx(tn / (tn + fp), abs=TOL)
    prec, rec, f1, sup = precision_recall_fscore_support(
        y, pred, labels=[0, 1], average=None, zero_division=0
    )
    for j, name in enumerate(classes):
        pc = metrics["per_class"][name]
        assert (pc["precision"], pc["recall"], pc["f1"]) == pytest.approx(
            (prec[j], rec[j], f1[j]), abs=TOL
        )
        assert pc["support"] == sup[j]
    assert metrics["per_class"][classes[1]]["average_precision"] == pytest.approx(
        average_precision_score(y, p1), abs=TOL
    )
    assert metrics["f1_macro"] == pytest.approx(float(np.mean(f1)), abs=TOL)


@pytest.mark.slow
def test_predict_folder_lists_the_corrupt_file_and_predicts_the_rest(
    run_dir: Path, nih_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "films"
    folder.mkdir()
    sources = sorted((nih_dir / "images").glob("*.png"))[:3]
    for i, src in enumerate(sources):
        (folder / f"film{i}.png").write_bytes(src.read_bytes())
    (folder / "broken.png").write_bytes(sources[0].read_bytes()[:200])  # truncated PNG
    (folder / "notes.txt").write_text("not a film, and not a film suffix either")
    out = tmp_path / "preds.csv"
    capsys.readouterr()
    assert run_cxr("predict", run_dir, folder, "--out", out, "--num-workers", "0") == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    with out.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    classes = list(read_card(run_dir).class_names)
    assert [Path(r["path"]).name for r in rows] == [
        "broken.png",
        "film0.png",
        "film1.png",
        "film2.png",
    ]
    broken, good = rows[0], rows[1:]
    assert broken["error"] and broken["label"] == "" and broken[classes[0]] == ""
    assert f"{folder / 'broken.png'}: {broken['error']}" in " ".join(err.split())
    for r in good:
        assert r["error"] == "" and r["label"] in classes
        assert sum(float(r[c]) for c in classes) == pytest.approx(1.0, abs=1e-5)
    assert "predicted 3 film(s); 1 unreadable" in err


@pytest.mark.slow
def test_predict_dicom_matches_the_png_it_was_made_from(
    run_dir: Path, nih_dir: Path, tmp_path: Path
) -> None:
    png = sorted((nih_dir / "images").glob("*.png"))[0]
    pixels = png_pixels(png)
    mono2 = write_dicom(tmp_path / "film.dcm", pixels)
    mono1 = write_dicom(tmp_path / "film_m1.dcm", 255 - pixels, photometric="MONOCHROME1")
    out = tmp_path / "preds.json"
    code = run_cxr(
        "predict",
        run_dir,
        png,
        str(tmp_path / "*.dcm"),
        "--out",
        out,
        "--num-workers",
        "0",
        "--jpeg-draft",  # JPEG only: PNG and DICOM films decode exactly as without it
    )
    assert code == 0
    rows = {Path(r["path"]).name: r for r in json.loads(out.read_text())}
    assert set(rows) == {png.name, mono2.name, mono1.name}
    assert not any("error" in r for r in rows.values())
    reference = rows[png.name]["probabilities"]
    for name in (mono2.name, mono1.name):
        assert rows[name]["probabilities"] == pytest.approx(reference, abs=1e-4)
        assert rows[name]["label"] == rows[png.name]["label"]


@pytest.mark.slow
def test_predict_to_stdout_writes_csv(
    run_dir: Path, nih_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    png = sorted((nih_dir / "images").glob("*.png"))[1]
    capsys.readouterr()
    assert run_cxr("predict", run_dir, png, "--num-workers", "0") == 0
    rows = list(csv.DictReader(capsys.readouterr().out.strip().splitlines()))
    classes = list(read_card(run_dir).class_names)
    assert len(rows) == 1 and rows[0]["path"] == str(png)
    assert {"label", *classes, "error"} <= set(rows[0])
    assert rows[0]["label"] in classes and rows[0]["error"] == ""
