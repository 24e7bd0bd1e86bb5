"""Frontal or lateral: the shipped screening net, the guard, `cxr polarity check`, and the
warning helper, on real lateral films of lungmasks_v7 that the shipped model never saw."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cxrkit.cli.app import app
from cxrkit.data.patient_split import patient_part
from cxrkit.guard import check_films, screen_fields, view_warning
from cxrkit.io import read_image
from cxrkit.polarity import load_polarity_model
from cxrkit.polarity.predict import screen_films

# lateral films of patients in the test part of the shared split (never trained on)
TEST_LATERALS = {"images/16664_2_1.png": "184", "images/covid-19-pneumonia-14-L.png": "23"}
FRONTAL_SAMPLES = ["00000001_000.png", "00027426_000.png", "16747_3_1.jpg"]


@pytest.fixture(scope="module")
def laterals(shared_data: Path) -> list[Path]:
    v7 = shared_data / "lungmasks_v7"
    rows = {r["path"]: r for r in csv.DictReader((v7 / "labels.csv").open())}
    for path, patient in TEST_LATERALS.items():
        assert rows[path]["view"] == "L" and rows[path]["patient_id"] == patient
        assert patient_part(patient) == "test"
    return [v7 / p for p in TEST_LATERALS]


def test_held_out_lateral_films_are_called_lateral(laterals: list[Path]) -> None:
    images = [read_image(p)[0] for p in laterals]
    results = check_films(images + [1.0 - im for im in images])
    for r in results:
        assert r.view == "lateral" and 0.5 <= r.p_lateral <= 1.0, r
        # a lateral film the class head doubts is never called a photo or document
        assert r.is_cxr or ("lateral view" in r.reason and "photo" not in r.reason), r


def test_frontal_samples_are_frontal(samples_dir: Path) -> None:
    images = [read_image(samples_dir / n)[0] for n in FRONTAL_SAMPLES]
    results = check_films(images + [1.0 - im for im in images])
    assert [r.view for r in results] == ["frontal"] * 6, results
    assert all(r.is_cxr and 0.0 <= r.p_lateral < 0.5 for r in results)


def test_screen_rows_carry_view_and_p_lateral(laterals: list[Path], samples_dir: Path) -> None:
    model = load_polarity_model()
    paths = [laterals[0], samples_dir / FRONTAL_SAMPLES[0]]
    films = np.stack([model.prepare(read_image(p)[0]) for p in paths])
    rows = screen_films(films, model)
    assert [r["view"] for r in rows] == ["lateral", "frontal"]
    assert rows[0]["p_lateral"] >= model.lateral_threshold > rows[1]["p_lateral"]


def test_warning_for_a_frontal_classifier_not_photo_document(laterals: list[Path]) -> None:
    model = load_polarity_model()
    probs = model.probs(model.prepare(read_image(laterals[1])[0])[None])[0]
    fields = screen_fields(probs, "", model, trained_views=("frontal",))
    assert fields["view"] == "lateral" and fields["not_cxr"] is False
    assert "lateral view: this model was trained on frontal films" in fields["warning"]
    assert "photo" not in fields["warning"]
    both = screen_fields(probs, "", model, trained_views=("frontal", "lateral"))
    assert "lateral view" not in both["warning"]


def test_view_warning_text() -> None:
    assert view_warning("lateral") == "lateral view: this model was trained on frontal films"
    assert view_warning("lateral", ["frontal", "lateral"]) == ""
    assert view_warning("frontal") == "" and view_warning("") == ""


def test_cli_check_prints_and_writes_the_view(
    laterals: list[Path], samples_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preds.csv"
    frontal = samples_dir / FRONTAL_SAMPLES[1]
    result = CliRunner().invoke(
        app, ["polarity", "check", str(laterals[0]), str(frontal), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "lateral view" in result.output and "1 lateral" in result.output
    rows = {Path(r["path"]).name: r for r in csv.DictReader(out.open())}
    assert rows[laterals[0].name]["view"] == "lateral"
    assert rows[frontal.name]["view"] == "frontal"
    assert (
        float(rows[frontal.name]["p_lateral"]) < 0.5 <= float(rows[laterals[0].name]["p_lateral"])
    )


def test_model_files_without_a_view_head_are_refused(tmp_path: Path) -> None:
    from cxrkit.errors import ModelFileError
    from cxrkit.models.model_file import save_model_file
    from cxrkit.polarity.net import PolarityNet

    net = PolarityNet()
    del net.view  # the three-class network of earlier releases
    fields = {"task": "polarity", "class_names": ["positive", "negative", "not_cxr"]}
    fields |= {"architecture": "polarity_net", "widths": list(net.widths)}
    fields["preprocessing"] = {"size": 64, "resize_mode": "squash", "channels": "grayscale"}
    path = save_model_file(tmp_path / "old.safetensors", net, fields)
    with pytest.raises(ModelFileError, match="view head"):
        load_polarity_model(path)
