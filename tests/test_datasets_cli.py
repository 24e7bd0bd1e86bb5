"""`cxr data sets | prepare | download | convert | merge` from the shell, and prepared
TBX11K-, Montgomery- and CheXpert-shaped sets trained and evaluated end to end (CI size)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from datasets_fixtures import film, mask

CXR = Path(sys.executable).with_name("cxr")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


def cxr(*args: str, ok: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([str(CXR), *args], capture_output=True, text=True, env=ENV, timeout=300)
    if ok:
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _train(data: Path, run: Path, cache: Path) -> dict:
    """`cxr train` (which also scores its test split) on a prepared set; its metrics."""
    cxr(
        "train", "--data", str(data), "--out", str(run), "--backbone", "small_cnn",
        "--mode", "finetune", "--image-size", "32", "--epochs", "1", "--batch-size", "8",
        "--num-workers", "0", "--cache-dir", str(cache), "--set", "n_bootstrap=0",
        "--no-progress",
    )  # fmt: skip
    return json.loads((run / "metrics.json").read_text())


def test_sets_lists_every_set_and_download_explains_registration():
    out = cxr("data", "sets", "--json").stdout
    sets = {s["name"]: s for s in json.loads(out)}
    assert sets["nih"]["downloads"] and not sets["chexpert"]["downloads"]
    table = cxr("data", "sets").stdout
    assert "VinDr-CXR" in table and "registration" in table
    proc = cxr("data", "download", "chexpert", "--dest", "/nonexistent/x", ok=False)
    assert proc.returncode == 2 and "stanfordaimi" in proc.stderr
    plan = cxr("data", "download", "openi", "--dest", "/tmp/unused", "--dry-run",
               "--base-url", "http://mirror.example/openi").stdout  # fmt: skip
    assert "NLMCXR_png.tgz\thttp://mirror.example/openi/NLMCXR_png.tgz" in plan
    assert "NLMCXR_png.tgz\thttp://mirror.example/openi/NLMCXR_png.tgz\ttrust on first use" in plan


def test_prepare_errors_name_the_flag(tmp_path):
    proc = cxr("data", "prepare", "nih", "--root", str(tmp_path), "--out", str(tmp_path / "o"),
               "--uncertain", "maybe", ok=False)  # fmt: skip
    assert proc.returncode == 2 and "uncertain must be one of" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_tbx11k_and_montgomery_shaped_sets_train_and_evaluate(tmp_path):
    tbx = tmp_path / "TBX11K"
    for c, folder in enumerate(("health", "sick", "tb")):
        for i in range(10):
            film(tbx / "imgs" / folder / f"{folder[0]}{i:04d}.png", size=40, seed=10 * c + i)
    (tbx / "annotations" / "json").mkdir(parents=True)
    (tbx / "annotations" / "json" / "TBX11K_train.json").write_text(json.dumps({
        "categories": [{"id": 1, "name": "ActiveTuberculosis"}],
        "images": [{"id": 1, "file_name": "tb/t0000.png"}],
        "annotations": [{"id": 1, "image_id": 1, "category_id": 1, "bbox": [4, 4, 10, 12]}],
    }))  # fmt: skip
    cxr("data", "prepare", "tbx11k", "--root", str(tbx), "--out", str(tmp_path / "tbx_p"))
    metrics = _train(tmp_path / "tbx_p", tmp_path / "run_tbx", tmp_path / "cache")
    assert metrics["class_names"] == ["healthy", "sick_but_not_tb", "tb"]
    # the trained model scores the prepared set again through `cxr evaluate`
    cxr("evaluate", str(tmp_path / "run_tbx"), "--data", str(tmp_path / "tbx_p"),
        "--out", str(tmp_path / "eval"), "--n-bootstrap", "0", "--num-workers", "0")  # fmt: skip
    assert (tmp_path / "eval" / "metrics.json").is_file()

    mcu = tmp_path / "MontgomerySet"
    for i in range(16):
        stem = f"MCUCXR_{i + 1:04d}_{i % 2}"
        film(mcu / "CXR_png" / f"{stem}.png", size=40, seed=i)
        mask(mcu / "ManualMask" / "leftMask" / f"{stem}.png", size=40, left=True)
        mask(mcu / "ManualMask" / "rightMask" / f"{stem}.png", size=40, left=False)
    cxr("data", "prepare", "montgomery", "--root", str(mcu), "--out", str(tmp_path / "mcu_p"))
    metrics = _train(tmp_path / "mcu_p", tmp_path / "run_mcu", tmp_path / "cache")
    assert metrics["class_names"] == ["normal", "tb"]


@pytest.mark.slow
def test_chexpert_shaped_set_with_uncertain_findings_trains(tmp_path):
    root = tmp_path / "CheXpert-v1.0-small"
    cols = ["Path", "Sex", "Age", "Frontal/Lateral", "AP/PA", "No Finding", "Cardiomegaly",
            "Edema", "Pleural Effusion"]  # fmt: skip
    lines = [",".join(cols)]
    values = ["1.0", "-1.0", "0.0", ""]
    for i in range(24):
        rel = f"CheXpert-v1.0-small/train/patient{i // 2:05d}/study1/view{i % 2 + 1}_frontal.jpg"
        film(tmp_path / rel, size=40, seed=i, fmt="JPEG")
        v = [values[(i + k) % 4] for k in range(3)]
        lines.append(",".join([rel, "Female", "50", "Frontal", "AP", "", *v]))
    (root / "train.csv").write_text("\n".join(lines) + "\n")
    cxr("data", "prepare", "chexpert", "--root", str(root), "--out", str(tmp_path / "p"))
    info = json.loads((tmp_path / "p" / "dataset.json").read_text())
    assert info["films"] == 24 and info["uncertain_films"] > 0 and info["patients"] == 12
    cxr("data", "convert", str(tmp_path / "p"), "--out", str(tmp_path / "c"), "--size", "32")
    _train(tmp_path / "c", tmp_path / "run", tmp_path / "cache")
    history = json.loads((tmp_path / "run" / "history.json").read_text())
    losses = [h["train_loss"] for h in history]
    assert losses and all(np.isfinite(losses))  # NaN (uncertain) targets were masked out


def test_download_from_a_local_mirror_then_prepare(tmp_path):
    import io
    import tarfile

    from datasets_http import LocalServer, Script

    def tgz(members: dict[str, bytes]) -> bytes:
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tar:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        return buf.getvalue()

    png = film(tmp_path / "f.png").read_bytes()
    report = (
        b'<eCitation><uId id="CXR7"/><MeSH><major>Nodule/lung/left</major></MeSH>'
        b'<parentImage id="CXR7_1_IM-0001-1001"/></eCitation>'
    )
    script = Script({
        "/NLMCXR_png.tgz": tgz({"NLMCXR_png/CXR7_1_IM-0001-1001.png": png}),
        "/NLMCXR_reports.tgz": tgz({"ecgen-radiology/7.xml": report}),
    })  # fmt: skip
    dest = tmp_path / "openi"
    with LocalServer(script) as url:
        proc = cxr("data", "download", "openi", "--dest", str(dest), "--base-url", url,
                   "--workers", "2")  # fmt: skip
    assert "downloaded" in proc.stderr and (dest / "SHA256SUMS").is_file()
    cxr("data", "prepare", "openi", "--root", str(dest), "--out", str(tmp_path / "p"))
    row = (tmp_path / "p" / "labels.csv").read_text().splitlines()[1]
    assert row.startswith("../openi/NLMCXR_png/CXR7_1_IM-0001-1001.png,Nodule,")
