"""Runtimes of `Classifier.load`: int8 (calibrated on the run's training films, recorded in
the card), OpenVINO, and the errors for a missing file or package."""

from __future__ import annotations

import builtins
import csv
import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from cxrkit.classifier import Classifier  # noqa: E402
from cxrkit.classifier.runtimes import RuntimeMissingError, check_runtime  # noqa: E402
from cxrkit.errors import ModelFileError  # noqa: E402
from cxrkit.export.quantize import quantize_model  # noqa: E402
from serve_helpers import save_random_model  # noqa: E402


def _run_with_split(tmp_path: Path, site_dir: Path) -> Path:
    """A run folder: a random model and a split.csv putting site films in train / test."""
    run = tmp_path / "run"
    model = save_random_model(run / "model.safetensors")
    with open(site_dir / "labels.csv", newline="") as f:
        paths = sorted(r["path"] for r in csv.DictReader(f))
    with open(run / "split.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "patient_id", "split"])
        for k, p in enumerate(paths[:60]):
            w.writerow([p, p, "test" if k % 3 == 0 else "train"])
    return model


def test_int8_export_records_calibration_and_accuracy_change(
    tmp_path: Path, site_dir: Path
) -> None:
    model = _run_with_split(tmp_path, site_dir)
    out = model.parent / "model.int8.onnx"
    path, card = quantize_model(model, out, site_dir, n_films=16)
    q = card.provenance.quantization
    assert q["calibration"]["name"] == site_dir.name and q["calibration"]["split"] == "train"
    assert q["calibration"]["films"] == 16 and len(q["calibration"]["films_sha256"]) == 64
    change = q["accuracy_change"]
    assert change["split"] == "test" and change["films"] == 20
    assert change["auc_fp32"] is not None  # both classes among the test films
    assert {"auc_fp32", "auc_int8", "accuracy_fp32", "accuracy_int8", "within_tolerance"} <= set(
        change
    )
    assert str(tmp_path) not in json.dumps(q)  # names and hashes, no local path

    int8 = Classifier.load(model.parent, "onnx-int8")  # the run folder finds model.int8.onnx
    fp32 = Classifier.load(model, "onnx")
    assert int8.runtime == "onnx-int8" and int8.card.provenance.quantization == q
    size = card.size
    films = np.random.default_rng(0).random((4, 1, size, size), dtype=np.float32)
    p8, p32 = int8.probs(films), fp32.probs(films)
    assert np.isfinite(p8).all() and np.abs(p8 - p32).max() < 0.05
    assert int8.net is not None  # the torch net beside it serves explain


def test_openvino_matches_onnxruntime(tmp_path: Path) -> None:
    pytest.importorskip("openvino")
    model = save_random_model(tmp_path / "model.safetensors")
    ov, ort = Classifier.load(model, "openvino"), Classifier.load(model, "onnx")
    assert ov.runtime == "openvino"
    size = ov.card.size
    films = np.random.default_rng(1).random((3, 1, size, size), dtype=np.float32)
    assert np.abs(ov.probs(films) - ort.probs(films)).max() < 1e-4


def test_missing_runtime_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_openvino(name, *args, **kw):  # type: ignore[no-untyped-def]
        if name.split(".")[0] == "openvino":
            raise ImportError("No module named 'openvino'")
        return real_import(name, *args, **kw)

    monkeypatch.delitem(__import__("sys").modules, "openvino", raising=False)
    monkeypatch.setattr(builtins, "__import__", no_openvino)
    with pytest.raises(RuntimeMissingError, match=r"cxrkit\[openvino\]"):
        check_runtime("openvino")
    with pytest.raises(ModelFileError, match="runtime must be one of"):
        check_runtime("tensorrt")


def test_cli_int8_export_needs_calibration_and_predict_knows_runtimes(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cxrkit.cli.app import app

    model = save_random_model(tmp_path / "model.safetensors")
    out = tmp_path / "m.int8.onnx"
    result = CliRunner().invoke(
        app, ["export", str(model), "--format", "onnx-int8", "--out", str(out)]
    )
    assert result.exit_code != 0 and "--calibration" in f"{result.exception}{result.output}"
    result = CliRunner().invoke(app, ["predict", str(model), str(tmp_path), "--runtime", "tpu"])
    assert result.exit_code != 0 and "onnx-int8" in f"{result.exception}{result.output}"


def test_int8_without_its_file_says_how_to_make_it(tmp_path: Path) -> None:
    """The message names the `cxr export` command (not a Python call, as before)."""
    from cxrkit.cli.flags import as_flags

    model = save_random_model(tmp_path / "model.safetensors")
    with pytest.raises(ModelFileError) as err:
        Classifier.load(model, "onnx-int8")
    int8 = tmp_path / "model.int8.onnx"
    printed = as_flags(str(err.value))  # as `cxr predict --runtime onnx-int8` prints it
    assert f"cxr export {model} --out {int8} --format onnx-int8 --calibration " in printed


# Run in a child process: OpenVINO's bf16 kernels stay out of the long-lived test process
# (with them loaded, a later test of the full suite died of SIGSEGV while it waited on a
# lock; the cause was not found in the time there was).
BF16_CHECK = """
import json, sys
import numpy as np
from cxrkit.classifier import Classifier
from cxrkit.errors import ModelFileError
model = sys.argv[1]
try:
    bf16 = Classifier.load(model, "openvino-bf16")
except ModelFileError as exc:
    print(json.dumps({"refused": str(exc)}))
    raise SystemExit(0)
fp32 = Classifier.load(model, "openvino")
size = bf16.card.size
films = np.random.default_rng(0).random((4, size, size), dtype=np.float32)
expected = Classifier.load(model, "torch", device="cpu").probs(films)
print(json.dumps({
    "runtimes": [bf16.runtime, fp32.runtime],
    "precisions": [bf16.onnx.precision, fp32.onnx.precision],
    "fp32_diff": float(np.abs(fp32.probs(films) - expected).max()),
    "bf16_diff": float(np.abs(bf16.probs(films) - expected).max()),
}))
"""


def test_openvino_bf16_is_asked_for_by_name_and_stays_near_fp32(tmp_path: Path) -> None:
    """`openvino-bf16` runs the fp32 graph in bfloat16 only when named (plain `openvino`
    stays f32), where the CPU has bf16 (else it is refused); probabilities move only
    slightly."""
    import subprocess
    import sys

    pytest.importorskip("openvino")
    model = save_random_model(tmp_path / "model.safetensors")
    got = subprocess.run(
        [sys.executable, "-c", BF16_CHECK, str(model)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert got.returncode == 0, got.stderr[-2000:]
    out = json.loads(got.stdout.strip().splitlines()[-1])
    if "refused" in out:
        assert "no bfloat16" in out["refused"]
        return
    assert out["runtimes"] == ["openvino-bf16", "openvino"]
    assert out["precisions"] == ["bf16", "f32"]
    assert out["fp32_diff"] <= 1e-5 and out["bf16_diff"] <= 0.05
