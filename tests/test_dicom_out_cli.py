"""`cxr predict/explain --dicom-out`: the SR and overlay of a real DICOM film, read back."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.uid import UID
from typer.testing import CliRunner

import cxrkit
from cxrkit.cli.app import app
from serve_helpers import save_random_model
from tools import missing_tool

hd = pytest.importorskip("highdicom", reason="the 'dicom' extra (highdicom) is not installed")

SIIM = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
ROOT = "1.2.826.0.1.3680043.10.543"
PNEUMONIA = ("233604007", "SCT")


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("dicom_out") / "model.safetensors")


@pytest.fixture(scope="module")
def predicted(model: Path, samples_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One `cxr predict --dicom-out` run over the SIIM film and a PNG."""
    out = tmp_path_factory.mktemp("predicted")
    films = [samples_dir / SIIM, samples_dir / "00000001_000.png"]
    result = CliRunner().invoke(
        app,
        [
            "predict", str(model), *map(str, films), "--out", str(out / "preds.json"),
            "--num-workers", "0", "--dicom-out", str(out / "dicom"), "--uid-root", ROOT,
        ],
        env={"COLUMNS": "300"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = {Path(r["path"]).name: r for r in json.loads((out / "preds.json").read_text())}
    return {
        "out": out / "dicom", "rows": rows, "output": result.output, "source": films[0],
        "model": model,
    }  # fmt: skip


def _measurement_groups(path: Path) -> list:
    return hd.sr.srread(path).content.get_image_measurement_groups()


def test_sr_finding_and_probability_equal_cxr_predict(predicted: dict) -> None:
    source = pydicom.dcmread(predicted["source"], stop_before_pixels=True)
    row = predicted["rows"][SIIM]
    sr_path = predicted["out"] / f"{source.SOPInstanceUID}_sr.dcm"
    sr = hd.sr.srread(sr_path)
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.33"  # Comprehensive SR
    assert sr.StudyInstanceUID == source.StudyInstanceUID
    assert sr.PatientID == source.PatientID
    assert sr.SeriesInstanceUID != source.SeriesInstanceUID
    for uid in (sr.SeriesInstanceUID, sr.SOPInstanceUID):
        assert UID(uid).is_valid and uid.startswith(ROOT + ".")
    evidence = sr.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
    assert evidence.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID

    groups = _measurement_groups(sr_path)
    finding = next(g for g in groups if (g.finding_type.value, g.finding_type.scheme_designator)
                   == PNEUMONIA)  # fmt: skip
    values = {m.name.meaning: m.value for m in finding.get_measurements()}
    assert values["Probability"] == row["probabilities"]["pneumonia"]  # exact: FD is stored
    assert values["Decision threshold"] == 0.5
    decision = finding.get_qualitative_evaluations()[0].value.meaning
    assert decision == ("Present" if row["label"] == "pneumonia" else "Absent")
    refs = {img.referenced_sop_instance_uid for g in groups for img in g.source_images}
    assert refs == {source.SOPInstanceUID}
    texts = dict(_text_items(sr))  # the model's name and version (TID 4019)
    assert texts["Algorithm Name"] == predicted["model"].parent.name
    assert texts["Algorithm Version"] == cxrkit.__version__


def _text_items(ds: pydicom.Dataset):
    for item in ds.get("ContentSequence", []):
        if item.ValueType == "TEXT":
            yield item.ConceptNameCodeSequence[0].CodeMeaning, item.TextValue
        yield from _text_items(item)


def test_overlay_is_a_secondary_capture_with_the_notice_burned_in(predicted: dict) -> None:
    source = pydicom.dcmread(predicted["source"], stop_before_pixels=True)
    sc = pydicom.dcmread(predicted["out"] / f"{source.SOPInstanceUID}_overlay.dcm")
    sr = pydicom.dcmread(predicted["out"] / f"{source.SOPInstanceUID}_sr.dcm")
    assert sc.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"  # Secondary Capture Image Storage
    assert sc.StudyInstanceUID == source.StudyInstanceUID
    assert sc.SeriesInstanceUID not in (source.SeriesInstanceUID, sr.SeriesInstanceUID)
    assert UID(sc.SOPInstanceUID).is_valid and sc.SOPInstanceUID.startswith(ROOT + ".")
    assert sc.PatientID == source.PatientID and sc.BurnedInAnnotation == "YES"
    assert sc.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    pixels = sc.pixel_array
    assert (
        pixels.shape == (source.Rows, source.Columns, 3) and sc.PhotometricInterpretation == "RGB"
    )
    band = pixels[: source.Rows // 40]  # the black band with white text on top
    assert (band < 10).mean() > 0.5 and (band > 245).any()
    below = pixels[source.Rows // 4 :]
    assert not np.array_equal(below[..., 0], below[..., 2])  # colour heat map blended in


def test_png_inputs_say_there_is_no_study(predicted: dict) -> None:
    assert "no study to attach" in predicted["output"]
    assert len(list(predicted["out"].glob("*.dcm"))) == 2  # only the DICOM film's two


def test_outputs_pass_dciodvfy(predicted: dict) -> None:
    if shutil.which("dciodvfy") is None:
        missing_tool("dciodvfy (dicom3tools) not found", "apt-get install dicom3tools")
    for path in sorted(predicted["out"].glob("*.dcm")):
        run = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [ln for ln in (run.stdout + run.stderr).splitlines() if ln.startswith("Error")]
        assert not errors, f"{path.name}: {errors}"


def test_explain_dicom_out_writes_both_for_a_dicom_film(
    model: Path, kermany_dir: Path, tmp_path: Path
) -> None:
    from dicom_factory import png_pixels, write_dicom

    png = sorted((kermany_dir / "images").glob("*.png"))[0]
    film = write_dicom(
        tmp_path / "film.dcm", png_pixels(png), StudyInstanceUID="1.2.3.4.5",
        SeriesInstanceUID="1.2.3.4.5.6", PatientName="Doe^Jane", PatientAge="7",
    )  # fmt: skip
    result = CliRunner().invoke(
        app,
        ["explain", str(model), str(film), "--out", str(tmp_path / "ex"), "--no-lungs",
         "--dicom-out", str(tmp_path / "dicom")],
        env={"COLUMNS": "300"},
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    source = pydicom.dcmread(film, stop_before_pixels=True)
    sr = pydicom.dcmread(tmp_path / "dicom" / f"{source.SOPInstanceUID}_sr.dcm")
    sc = pydicom.dcmread(tmp_path / "dicom" / f"{source.SOPInstanceUID}_overlay.dcm")
    assert sr.StudyInstanceUID == sc.StudyInstanceUID == "1.2.3.4.5"
    assert sr.PatientName == "Doe^Jane" and sr.PatientAge == "007Y"  # fixed to its VR


def test_bad_uid_root_and_onnx_runtime_are_flag_errors(model: Path, samples_dir: Path) -> None:
    from cxrkit.cli.dicom_flags import make_writer
    from cxrkit.cli.flags import as_flags
    from cxrkit.errors import CxrkitError

    result = CliRunner().invoke(
        app,
        ["predict", str(model), str(samples_dir / SIIM), "--dicom-out", "/tmp/never",
         "--uid-root", "1.02.3"],
    )  # fmt: skip
    assert isinstance(result.exception, CxrkitError)
    assert "--uid-root '1.02.3'" in as_flags(str(result.exception))  # as `cxr` prints it
    with pytest.raises(CxrkitError, match="--runtime torch"):
        make_writer(None, None, runtime="onnx")


def test_burned_in_text_carries_each_screening_warning_on_its_own_line() -> None:
    from cxrkit.classifier.screen import LATERAL_WARNING
    from cxrkit.dicom_out.overlay import burn_notice, overlay_lines

    row = {"label": "pneumonia", "warning": f"{LATERAL_WARNING}; film looks inverted (p=0.97)"}
    lines = overlay_lines(row, "demo", "1")
    assert lines[1] == "model demo 1: pneumonia"
    assert lines[2:] == [f"WARNING: {LATERAL_WARNING}", "WARNING: film looks inverted (p=0.97)"]
    assert overlay_lines({"label": "normal", "warning": ""}, "demo", "1")[2:] == []
    film = np.full((512, 512, 3), 200, np.uint8)
    band_rows = [
        int((burn_notice(film, n)[:, 0] == 0).all(axis=1).sum()) for n in (lines[:2], lines)
    ]
    assert band_rows[1] > band_rows[0] > 0  # the warnings are drawn, not cut off


def test_dicom_out_decodes_and_runs_each_dicom_film_once(
    model: Path, samples_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--dicom-out` reads a DICOM film's pixels once and runs the prediction forward pass
    once (`Classifier.outputs`); the heat map comes from that same input (the CAM's own
    gradient pass runs on a copy of the network and is not a prediction pass)."""
    import cxrkit.dicom_out.writer  # noqa: F401  (the module that reads the film)
    import cxrkit.io
    from cxrkit.classifier import Classifier

    reads: list[str] = []
    passes: list[int] = []
    real_read, real_outputs = cxrkit.io.read_image, Classifier.outputs

    def counting_read(path, *a, **kw):  # type: ignore[no-untyped-def]
        reads.append(Path(path).name)
        return real_read(path, *a, **kw)

    def counting_outputs(self, films):  # type: ignore[no-untyped-def]
        passes.append(len(films))
        return real_outputs(self, films)

    monkeypatch.setattr(cxrkit.io, "read_image", counting_read)
    monkeypatch.setattr(Classifier, "outputs", counting_outputs)
    film = tmp_path / "film.dcm"
    shutil.copy(samples_dir / SIIM, film)
    result = CliRunner().invoke(
        app,
        ["predict", str(model), str(film), "--out", str(tmp_path / "p.json"),
         "--num-workers", "0", "--dicom-out", str(tmp_path / "dicom"), "--uid-root", ROOT],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert reads == ["film.dcm"]  # one decode of the pixels
    assert passes == [1]  # one prediction forward pass, for that one film
    assert len(list((tmp_path / "dicom").glob("*.dcm"))) == 2  # SR + overlay
