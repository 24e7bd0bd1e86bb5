"""A screening model output that is not finite, or a screening that cannot run, is said in
every output: never a polarity, view or "chest film" verdict, never empty columns alone."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cxrkit.classifier import Classifier
from cxrkit.classifier import screen as screening
from cxrkit.cli.app import app
from cxrkit.errors import ModelOutputError
from cxrkit.guard import guard_result
from cxrkit.io import read_image
from cxrkit.polarity import load_polarity_model
from cxrkit.polarity.model import PolarityModel
from cxrkit.polarity.predict import polarity_row
from serve_helpers import save_random_model

FILM = "00000001_000.png"


def _nan_probs(self: PolarityModel, films: np.ndarray) -> np.ndarray:
    return np.full((len(films), 4), np.nan, np.float32)


@pytest.fixture()
def broken_screen(monkeypatch: pytest.MonkeyPatch) -> None:
    if screening.screen_model()[0] is None:
        pytest.skip(f"screening model unavailable: {screening.screen_model()[1]}")
    monkeypatch.setattr(PolarityModel, "probs", _nan_probs)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -0.1, 1.5])
def test_a_broken_row_gives_no_polarity_and_no_guard_verdict(bad: float) -> None:
    model = load_polarity_model()
    row = np.array([0.9, 0.05, 0.05, bad], np.float32)
    with pytest.raises(ModelOutputError, match="non-finite or out-of-range"):
        polarity_row(row, model)
    with pytest.raises(ModelOutputError):
        guard_result(row, "", model)
    # a rule verdict (blank image, too small) stands without the model's numbers
    assert guard_result(row, "blank image (no contrast)", model).is_cxr is False


def test_predict_rows_say_the_film_was_not_screened(broken_screen, samples_dir, tmp_path) -> None:
    clf = Classifier.load(save_random_model(tmp_path / "m.safetensors"), device="cpu")
    image, _ = read_image(samples_dir / FILM)
    row = clf.predict([image])[0]
    assert "label" in row  # the classifier's own output is fine and kept
    assert row["polarity"] is None and row["view"] is None and row["not_cxr"] is None
    assert screening.NOT_SCREENED in row["warning"] and "non-finite" in row["warning"]


def test_predict_rows_say_so_when_there_is_no_screening_model(
    samples_dir, tmp_path, monkeypatch
) -> None:
    monkeypatch.setattr(screening, "screen_input", lambda image, graph=False: None)
    no_model = lambda graph=False: (None, "model not loadable")  # noqa: E731
    monkeypatch.setattr("cxrkit.classifier.classifier.screen_model", no_model)
    clf = Classifier.load(save_random_model(tmp_path / "m.safetensors"), device="cpu")
    (row,) = clf.predict([samples_dir / FILM], num_workers=0)
    assert row["warning"] == f"{screening.NOT_SCREENED}: model not loadable"


def test_polarity_check_writes_an_error_row_not_a_verdict(
    broken_screen, samples_dir, tmp_path
) -> None:
    out = tmp_path / "preds.csv"
    film = samples_dir / FILM
    result = CliRunner().invoke(
        app, ["polarity", "check", str(film), "--out", str(out), "--num-workers", "0"]
    )
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader(out.open()))
    assert row["polarity"] == "" and row["not_cxr"] == "" and "non-finite" in row["error"]


def test_polarity_fix_leaves_a_film_it_cannot_judge_unwritten(
    broken_screen, samples_dir, tmp_path
) -> None:
    out = tmp_path / "fixed"
    result = CliRunner().invoke(
        app, ["polarity", "fix", str(samples_dir / FILM), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    (row,) = list(csv.DictReader((out / "polarity_fix.csv").open()))
    assert row["action"] == "" and "non-finite" in row["error"]
    assert sorted(p.name for p in Path(out).iterdir()) == ["polarity_fix.csv"]
