"""summarize() and `cxr data summary` on the shared sets and a deliberately messy folder."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from cxrkit.cli.app import app
from cxrkit.data import summarize
from cxrkit.data.summary import probe_file
from cxrkit.errors import DatasetError

runner = CliRunner()


def test_kermany_summary(kermany_dir: Path) -> None:
    start = time.perf_counter()
    s = summarize(kermany_dir)
    elapsed = time.perf_counter() - start
    assert elapsed < 15.0
    assert s["task"] == "binary" and s["n_images"] == 5216
    assert {c["name"]: c["count"] for c in s["classes"]} == {"normal": 1341, "pneumonia": 3875}
    assert s["n_patients"] == 2846
    assert s["imbalance_ratio"] == pytest.approx(3875 / 1341, abs=1e-3)
    assert s["sizes"]["most_common"] == [{"size": [224, 224], "count": 5216}]
    assert s["formats"] == {"png": 5216}
    assert s["unreadable"] == []
    assert s["skipped"]["count"] == 0
    # Duplicate groups hold byte-identical files (Kermany has some repeated films).
    assert s["duplicates"], "expected a few exact duplicates in the Kermany train set"
    group = s["duplicates"][0]["paths"]
    first, second = (kermany_dir / p for p in group[:2])
    assert first.read_bytes() == second.read_bytes()


def test_nih_findings_summary(nih_dir: Path) -> None:
    s = summarize(nih_dir, label_column="findings")
    counts = {c["name"]: c["count"] for c in s["classes"]}
    assert s["task"] == "multilabel"
    assert counts["Effusion"] == 170 and counts["Hernia"] == 9
    assert s["no_finding"] == 499
    assert s["n_patients"] == 264
    assert s["imbalance_ratio"] == pytest.approx(170 / 9, abs=1e-3)
    assert s["sizes"]["height"] == [64, 64]


def make_messy_set(root: Path) -> Path:
    """Three good PNGs (one duplicated), a text file, a truncated PNG, a missing row."""
    root.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate([(40, 30), (40, 30), (50, 20)]):
        Image.fromarray(np.full((h, w), 40 * i, np.uint8), mode="L").save(root / f"g{i}.png")
    shutil.copy(root / "g0.png", root / "copy_of_g0.png")
    (root / "text.png").write_text("hello, I am not a film")
    data = (root / "g2.png").read_bytes()
    (root / "cut.png").write_bytes(data[: len(data) // 2 + 20])
    rows = [
        "path,label,patient_id",
        "g0.png,a,p0",
        "g1.png,b,p1",
        "g2.png,a,p2",
        "copy_of_g0.png,b,p3",
        "text.png,a,p4",
        "cut.png,b,p5",
        "gone.png,a,p6",
    ]
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_messy_folder(tmp_path: Path) -> None:
    root = make_messy_set(tmp_path / "set")
    s = summarize(root)
    assert s["n_images"] == 6
    assert s["skipped"] == {"count": 1, "first": [{"path": "gone.png", "reason": "file not found"}]}
    bad = {u["path"]: u["reason"] for u in s["unreadable"]}
    assert set(bad) == {"text.png", "cut.png"}
    assert "not a PNG" in bad["text.png"] and "truncated" in bad["cut.png"]
    assert s["duplicates"] == [
        {"paths": ["g0.png", "copy_of_g0.png"], "labels_differ": True, "patients_differ": True}
    ]
    assert s["sizes"]["most_common"][0] == {"size": [30, 40], "count": 3}
    assert s["sizes"]["height"] == [20, 30] and s["sizes"]["width"] == [40, 50]
    quick = summarize(root, check_files=False)
    assert quick["unreadable"] is None and quick["duplicates"] is None
    assert quick["sizes"]["checked"] == 5  # all but text.png: the cut PNG keeps its header


def test_dicom_header_size(tmp_path: Path) -> None:
    pydicom = pytest.importorskip("pydicom")
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = pydicom.Dataset()
    ds.file_meta = meta
    ds.Rows, ds.Columns = 24, 18
    ds.BitsAllocated, ds.BitsStored, ds.HighBit = 16, 12, 11
    ds.SamplesPerPixel, ds.PixelRepresentation = 1, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = np.zeros((24, 18), np.uint16).tobytes()
    path = tmp_path / "film.dcm"
    ds.save_as(path, enforce_file_format=True)
    probe = probe_file(path)
    assert probe.format == "dicom" and probe.size == (24, 18) and probe.error is None
    assert probe_file(path, read_all=False).size == (24, 18)


def test_cli_kermany_table_and_json(kermany_dir: Path) -> None:
    result = runner.invoke(app, ["data", "summary", str(kermany_dir)])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "normal" in out and "1341" in out and "25.7" in out
    assert "pneumonia" in out and "3875" in out and "74.3" in out
    assert "2846" in out and "224x224" in out
    as_json = runner.invoke(app, ["data", "summary", str(kermany_dir), "--json"])
    assert as_json.exit_code == 0
    parsed = json.loads(as_json.stdout)
    assert {c["name"]: c["count"] for c in parsed["classes"]} == {
        "normal": 1341,
        "pneumonia": 3875,
    }


def test_cli_nih_findings(nih_dir: Path) -> None:
    result = runner.invoke(app, ["data", "summary", str(nih_dir), "--label-column", "findings"])
    assert result.exit_code == 0, result.output
    for name, count in [("Effusion", "170"), ("Infiltration", "162"), ("Hernia", "9")]:
        line = next(ln for ln in result.output.splitlines() if name in ln)
        assert count in line
    assert "(no finding)" in result.output and "499" in result.output


def test_cli_reports_skipped_and_errors(tmp_path: Path) -> None:
    root = make_messy_set(tmp_path / "set")
    result = runner.invoke(app, ["data", "summary", str(root)])
    assert result.exit_code == 0, result.output
    assert "gone.png: file not found" in result.output
    assert "text.png" in result.output and "cut.png" in result.output
    bad = runner.invoke(app, ["data", "summary", str(root), "--label-column", "nope"])
    assert bad.exit_code != 0
    assert isinstance(bad.exception, DatasetError)
    assert "columns present: path, label, patient_id" in str(bad.exception)
