"""The three forms of `cxr segment`: IMAGE... --out DIR, train, evaluate (and run)."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cxrkit.cli.app import app
from segment_helpers import synthetic_annotator

runner = CliRunner()


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _invoke(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result


def _check_mask(path: Path, size_wh: tuple[int, int]) -> None:
    mask = Image.open(path)
    assert mask.size == size_wh and mask.mode == "L"
    assert set(np.unique(np.asarray(mask)).tolist()) <= {0, 255}


def test_default_form_takes_files_and_folders(samples_dir: Path, nih_dir: Path, tmp_path: Path):
    folder = tmp_path / "films"
    folder.mkdir()
    thumbs = sorted((nih_dir / "images").glob("*.png"))[1:3]  # [0] shares the sample's name
    for thumb in thumbs:
        shutil.copy(thumb, folder / thumb.name)
    nih = samples_dir / "00000001_000.png"
    out = tmp_path / "masks"
    _invoke("segment", nih, folder, "--out", out)
    _check_mask(out / "00000001_000.png", Image.open(nih).size)
    for thumb in thumbs:
        _check_mask(out / thumb.name, Image.open(thumb).size)
        assert Image.open(out / "overlays" / thumb.name).mode == "RGB"
    assert (out / "overlays" / "00000001_000.png").is_file()
    rows = list(csv.DictReader((out / "masks.csv").open()))
    assert len(rows) == 3 and not any(r["error"] for r in rows)


def test_run_form_and_unreadable_files(samples_dir: Path, tmp_path: Path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    out = tmp_path / "masks"
    result = _invoke(
        "segment", "run", samples_dir / "00000001_000.png", bad, "--out", out, "--no-overlays"
    )
    assert "1 unreadable" in result.output
    assert (out / "00000001_000.png").is_file() and not (out / "overlays").exists()


def test_train_then_evaluate_forms(tmp_path: Path):
    data = synthetic_annotator(tmp_path / "set", 10, 0)
    run = tmp_path / "run"
    _invoke(
        "segment",
        "train",
        "--data",
        data,
        "--out",
        run,
        "--epochs",
        "1",
        "--size",
        "64",
        "--val",
        "0.2",
        "--test",
        "0.2",
        "--threads",
        "1",
    )
    for name in (
        "model.safetensors",
        "split.csv",
        "history.json",
        "val/metrics.json",
        "test/per_film.csv",
    ):
        assert (run / name).is_file(), name
    out = tmp_path / "eval"
    result = _invoke("segment", "evaluate", run, "--data", data, "--split", "test", "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["n"] == 2
    assert {"mean", "min", "max"} <= set(metrics["dice"]) and len(metrics["worst"]) == 2
    assert len(list(csv.DictReader((out / "per_film.csv").open()))) == 2
    assert "Dice" in result.output


def test_evaluate_shipped_model_on_a_few_shared_films(lungmask_dir: Path, tmp_path: Path):
    rows = (lungmask_dir / "labels.csv").read_text().splitlines()
    header, picked = rows[0], [r for r in rows[1:] if ",masks/" in r][:2]
    absolute = [
        ",".join(str(lungmask_dir / v) if i < 2 else v for i, v in enumerate(r.split(",")))
        for r in picked
    ]
    (tmp_path / "labels.csv").write_text("\n".join([header, *absolute]) + "\n")
    out = tmp_path / "eval"
    _invoke("segment", "evaluate", "--data", tmp_path / "labels.csv", "--out", out)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n"] == 2 and metrics["split"] == "all" and metrics["dice"]["mean"] >= 0.90
    assert all(np.isfinite(r["hd95"]) for r in metrics["worst"])


def test_segment_help_lists_the_commands():
    result = _invoke("segment", "--help")
    for word in ("run", "train", "evaluate"):
        assert word in result.output
    with pytest.raises(AssertionError):
        _invoke("segment", "no-such-file.png", "--out", "/tmp/never")
