"""The model's name and version in the card (train, calibrate) and in the DICOM reports."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

import cxrkit
from cxrkit.dicom_out.codes import FINDINGS, PRIVATE_SCHEME, finding_code, view_code
from cxrkit.dicom_out.identity import model_identity
from cxrkit.models.model_file import read_card
from cxrkit.train.config import load_config, parse_overrides
from cxrkit.train.runner import model_identity as train_identity
from site_helpers import run_cxr, to_refit

NIH = (
    "Atelectasis", "Cardiomegaly", "Effusion", "Infiltration", "Mass", "Nodule", "Pneumonia",
    "Pneumothorax", "Consolidation", "Edema", "Emphysema", "Fibrosis", "Pleural_Thickening",
    "Hernia",
)  # fmt: skip


def test_train_card_name_and_version_default_and_set(tmp_path: Path) -> None:
    cfg = load_config(None, {}, {})
    assert train_identity(cfg, tmp_path / "run7") == {
        "name": "run7",
        "version": cxrkit.__version__,
    }
    cfg = load_config(None, {}, parse_overrides(["model_name=chest-v2", "model_version=2.1"]))
    assert train_identity(cfg, tmp_path / "run7") == {"name": "chest-v2", "version": "2.1"}


def test_calibrate_sets_name_and_version(site_dir: Path, tmp_path: Path) -> None:
    model = to_refit(tmp_path)
    code, _, err = run_cxr(
        "calibrate", model["src"], "--data", site_dir, "--out", model["out"], "--folds", "2",
        "--n-bootstrap", "10", "--model-name", "site-a", "--model-version", "1.0-site",
    )  # fmt: skip
    assert code == 0, err
    card = read_card(model["out"])
    assert (card.name, card.version) == ("site-a", "1.0-site")
    assert model_identity(card, model["out"]) == ("site-a", "1.0-site")


def test_identity_falls_back_to_the_run_folder(tmp_path: Path) -> None:
    run = tmp_path / "pneumo-run"
    run.mkdir()
    assert model_identity(None, run / "model.safetensors") == ("pneumo-run", cxrkit.__version__)
    assert model_identity(None, run) == ("pneumo-run", cxrkit.__version__)


def test_nih_findings_are_standard_codes_where_known_private_otherwise() -> None:
    codes = {name: finding_code(name) for name in NIH}
    private = {n for n, c in codes.items() if c.scheme_designator == PRIVATE_SCHEME}
    assert private == {"Pleural_Thickening", "Hernia"}
    assert codes["Pneumonia"].value == "233604007" and codes["Pneumonia"].scheme_designator == "SCT"
    assert codes["Effusion"] == finding_code("pleural effusion")
    assert all(len(c.value) <= 16 for c in codes.values())  # SH value representation
    assert finding_code("abnormal").scheme_designator == PRIVATE_SCHEME
    assert view_code("PA").value == "272479007" and view_code("lateral").value == "49370004"
    assert view_code("frontal").scheme_designator == PRIVATE_SCHEME
    assert set(FINDINGS) >= {"pneumonia", "normal", "no finding"}


def test_reported_classes_per_task_and_refuses_non_finite() -> None:
    from cxrkit.dicom_out.sr import reported_classes
    from cxrkit.errors import CxrkitError

    names = ["Atelectasis", "Effusion", "Hernia"]
    row = {
        "label": "Effusion",
        "probabilities": {"Atelectasis": 0.2, "Effusion": 0.7, "Hernia": 0.1},
    }
    size = {"preprocessing": {"size": 32}}  # the rest of a valid card
    multilabel = {
        "class_names": names, "task": "multilabel", "thresholds": [0.3, 0.6, 0.05], **size,
    }  # fmt: skip
    got = reported_classes(multilabel, row)
    assert [(f["name"], f["threshold"], f["present"]) for f in got] == [
        ("Atelectasis", 0.3, False),
        ("Effusion", 0.6, True),
        ("Hernia", 0.05, False),  # the row's label decides, as `cxr predict` printed it
    ]
    multiclass = {"class_names": names, "task": "multiclass", "thresholds": [], **size}
    assert [f["threshold"] for f in reported_classes(multiclass, row)] == [None] * 3
    row["probabilities"]["Hernia"] = float("nan")
    with pytest.raises(CxrkitError, match="not a finite number"):
        reported_classes(multiclass, row)


def test_screening_results_are_coded_in_the_sr(samples_dir: Path) -> None:
    hd = pytest.importorskip("highdicom", reason="the 'dicom' extra (highdicom) is not installed")
    from cxrkit.dicom_out import build_sr, read_source

    source = read_source(samples_dir / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm")
    row = {
        "label": "normal", "probabilities": {"normal": 0.9, "pneumonia": 0.1},
        "polarity": "positive", "view": "lateral", "not_cxr": False,
        "out_of_distribution": True, "ood_score": 3.5,
    }  # fmt: skip
    card = {
        "class_names": ["normal", "pneumonia"], "task": "binary", "thresholds": [0.3],
        "preprocessing": {"size": 64},
    }  # fmt: skip
    buffer = io.BytesIO()
    build_sr(source, row, card, model_name="m", model_version="1").save_as(buffer)
    buffer.seek(0)
    sr = hd.sr.srread(buffer)  # as a reader of the file sees it
    groups = {g.finding_type.meaning: g for g in sr.content.get_image_measurement_groups()}
    assert set(groups) == {"Pneumonia", "Image Quality"}
    pneumonia = groups["Pneumonia"].get_qualitative_evaluations()[0]
    assert pneumonia.value.meaning == "Absent"  # 0.1 < 0.3: as the row's label says
    screening = {
        q.name.meaning: q.value.meaning
        for q in groups["Image Quality"].get_qualitative_evaluations()
    }
    assert screening == {
        "Film polarity": "positive",
        "Image View": "Lateral",
        "Not a chest radiograph": "No",
        "Out of the model's training distribution": "Yes",
    }
    scores = {m.name.meaning: m.value for m in groups["Image Quality"].get_measurements()}
    assert scores == {"Out-of-distribution score": 3.5}
