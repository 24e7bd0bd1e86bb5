"""Model card parity fixture: evaluate, explain, serve, DICOM out and calibrate numbers.

Run as a script to (re)write `tests/fixtures/card_parity.json`:

    .venv/bin/python tests/card_parity.py [SHARED_DATA]

The fixture was first written by the code before the typed `ModelCard` refactor (issue 24)
(`PYTHONPATH=<old checkout>/src .venv/bin/python tests/card_parity.py`);
`tests/test_card_parity.py` rebuilds the same seeded model files and checks that today's
code gives the same numbers and decisions through the public entry points that both
versions have: `cxr evaluate / explain / predict --dicom-out / calibrate` (run in-process
through the CLI app) and the server's `POST /v1/predict` (FastAPI TestClient).

Models (cards written as plain JSON, never through the card API under test):

- `binary37`: binary, Platt calibration, threshold 0.37 (between the films' probabilities);
- `multi3`: multi-label, 3 classes, thresholds 0.25 / 0.9 / 0.2;
- `scored`: the recipe of `predict_parity`'s `scored` model (temperature 1.7, a feature
  reference: OOD columns), rebuilt here without reading cards through cxrkit;
- `sharp`: binary, over-confident (a scaled head): `cxr calibrate` writes a new map.

`cxr calibrate` covers its three outcomes: `binary37` with `--method sensitivity:0.9`
(threshold written), `sharp` (probability map written, decisions carried), `scored` (kept).
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "card_parity.json"
SHARED_DATA = Path(os.environ.get("CXR_SHARED", HERE.parent.parent / "shared"), "data").resolve()
CARD_KEY = "cxrkit_card"
SITE_FILMS = 16
SIIM = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
#: Sample films the server gets: a PNG, a JPEG and a MONOCHROME1 DICOM.
SERVE_FILMS = ("00000001_000.png", "16747_3_1.jpg", "Fake_MONOHR1.dcm")
RUNTIMES = ("torch", "onnx")
#: Absolute tolerance of each section's floats (keys in `LOOSE` override it).
SECTION_TOL = {
    "evaluate": 1e-9,
    "explain": 1e-6,
    "serve": 1e-6,
    "dicom_out": 1e-6,
    "calibrate": 1e-6,
}
#: Keys whose floats are compared more loosely anywhere: heat maps, 4-decimal roundings.
LOOSE = {"heat": 1e-4, "overlay_mean": 1e-2, "ood_score": 2e-4, "lung_energy": 2e-4}
#: Keys that depend on the shipped screening model (compared while it is the same file).
SCREEN_KEYS = frozenset(
    {"polarity", "not_cxr", "view", "p_lateral", "warning", "warnings", "screening",
     "overlay_sha256"}
)  # fmt: skip
#: Keys that depend on the shipped lung model.
LUNG_KEYS = frozenset({"lung_energy"})


# ---- model files -------------------------------------------------------------------------


def card_json(path: Path) -> dict[str, Any]:
    """The card JSON stored in a model file's safetensors metadata (no cxrkit involved)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        return json.loads((f.metadata() or {})[CARD_KEY])


def _card(task: str, classes: list[str], thresholds: list[float], **extra: Any) -> dict:
    """A `small_cnn` card as the train runner writes it (format 1 fields only)."""
    from serve_helpers import card_fields

    metrics = {"test": {"auc": 0.5, "accuracy": 0.5, "n": 10}}
    return {**card_fields("small_cnn", task, classes, thresholds), "metrics": metrics, **extra}


def _net(classes: int, seed: int, head_scale: float = 1.0) -> Any:
    """A seeded random `small_cnn`; `head_scale` spreads its logits (sharper probabilities)."""
    import torch

    from cxrkit.models import create_model

    torch.manual_seed(seed)
    net = create_model("small_cnn", classes, random_init=True)
    with torch.no_grad():
        for p in net.head.parameters():
            p.mul_(head_scale)
    return net.eval()


def build_models(folder: Path) -> dict[str, Path]:
    """Write the seeded model files into `folder`; returns {name: path}."""
    import torch

    from cxrkit.models import get_spec
    from cxrkit.models.model_file import save_model_file
    from cxrkit.models.ood import fit_feature_reference

    folder.mkdir(parents=True, exist_ok=True)
    binary = ["normal", "pneumonia"]
    platt = {"method": "platt", "params": {"a": 25.0, "b": 0.3}}
    models = {
        "binary37": save_model_file(
            folder / "binary37.safetensors",
            _net(2, seed=7),
            _card("binary", binary, [0.37], probability_calibration=platt,
                  name="parity-binary37", version="1.0"),
        ),
        "multi3": save_model_file(
            folder / "multi3.safetensors",
            _net(3, seed=11, head_scale=80.0),
            _card("multilabel", ["effusion", "nodule", "pneumonia"], [0.25, 0.9, 0.2],
                  name="parity-multi3", version="1.0"),
        ),
    }  # fmt: skip
    net = _net(2, seed=1)  # predict_parity's `scored` recipe
    gen = torch.Generator().manual_seed(2)
    size = get_spec("small_cnn").input_size
    with torch.inference_mode():
        feats = net.features(torch.rand(96, 1, size, size, generator=gen)).numpy()
    reference = fit_feature_reference(feats[:64], feats[64:], components=8)
    card = _card(
        "binary",
        binary,
        [0.5],
        ood=reference.card(),
        probability_calibration={"method": "temperature", "params": {"temperature": 1.7}},
        name="parity-scored",
        version="1.0",
    )
    models["scored"] = save_model_file(
        folder / "scored.safetensors", net, card, extra_tensors=reference.tensors()
    )
    models["sharp"] = save_model_file(
        folder / "sharp.safetensors",
        _net(2, seed=5, head_scale=60.0),
        _card("binary", binary, [0.5], name="parity-sharp", version="1.0"),
    )
    return models


def site_set(site: Path, folder: Path, n: int = SITE_FILMS) -> Path:
    """A labelled set of the first `n` rows of the site set's labels.csv, copied to `folder`."""
    with (site / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))[:n]
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for r in rows:
        shutil.copy(site / r["path"], folder / r["path"])
    with (folder / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


# ---- running the public entry points -----------------------------------------------------


def cxr(*args: str | Path) -> str:
    """Run `cxr ARGS` through the CLI app in this process; its output (raises on failure)."""
    from typer.testing import CliRunner

    from cxrkit.cli.app import app

    argv = [str(a) for a in args]
    result = CliRunner().invoke(app, argv, env={"COLUMNS": "300"})
    if result.exit_code != 0:
        raise RuntimeError(
            f"cxr {' '.join(argv)} exited {result.exit_code}: {result.output[-3000:]}"
            f"{result.exception!r}"
        )
    return result.output


METRIC_KEYS = (
    "n", "task", "class_names", "thresholds", "threshold", "accuracy", "balanced_accuracy",
    "confusion_matrix", "f1_macro", "sensitivity", "specificity", "ppv", "npv",
    "accuracy_ci", "sensitivity_ci", "specificity_ci", "predicted_positive_rate",
    "prevalence", "auc", "ece", "per_class",
)  # fmt: skip


def evaluate_numbers(model: Path, data: Path, runtime: str, out: Path) -> dict[str, Any]:
    """`cxr evaluate MODEL --data SET --runtime R`: the numbers of its metrics.json."""
    cxr("evaluate", model, "--data", data, "--out", out, "--runtime", runtime,
        "--n-bootstrap", "0", "--num-workers", "0", "--device", "cpu")  # fmt: skip
    metrics = json.loads((out / "metrics.json").read_text())
    got = {k: metrics.get(k) for k in METRIC_KEYS}
    got["reliability"] = {
        k: metrics["reliability"].get(k) for k in ("accuracies", "confidences", "counts", "ece")
    }
    return got


def heat_summary(heat: np.ndarray, grid: int = 8) -> dict[str, Any]:
    """A heat map as its shape, peak, mean and `grid` x `grid` block means."""
    h, w = heat.shape
    rows = np.array_split(np.arange(h), grid)
    cols = np.array_split(np.arange(w), grid)
    blocks = [[float(heat[np.ix_(r, c)].mean()) for c in cols] for r in rows]
    return {
        "shape": [h, w],
        "max": float(heat.max()),
        "mean": float(heat.mean()),
        "argmax": [int(i) for i in np.unravel_index(int(np.argmax(heat)), heat.shape)],
        "blocks": blocks,
    }


EXPLAIN_KEYS = (
    "class", "class_index", "probability", "probabilities", "method", "cam_layer",
    "input_size", "original_size", "crop", "crop_box", "boxes", "out_of_distribution",
    "ood_score", "not_cxr", "polarity", "view", "warning", "lung_energy",
)  # fmt: skip


def explain_numbers(model: Path, films: list[Path], out: Path) -> list[dict[str, Any]]:
    """`cxr explain MODEL FILMS --save-npy`: per film its info, heat map and overlay."""
    from PIL import Image

    cxr("explain", model, *films, "--out", out, "--save-npy")
    rows = []
    for info in json.loads((out / "explain.json").read_text()):
        row = {k: info.get(k) for k in EXPLAIN_KEYS}
        row["film"] = Path(info["path"]).name
        row["heat"] = heat_summary(np.load(info["npy"]).astype(np.float64))
        with Image.open(info["overlay"]) as im:
            rgb = np.asarray(im.convert("RGB"), dtype=np.float64)
        row["overlay_mean"] = [float(v) for v in rgb.mean(axis=(0, 1))]
        rows.append(row)
    return rows


SERVE_KEYS = (
    "format", "original_size", "inverted_on_read", "task", "label", "probabilities",
    "polarity", "not_cxr", "view", "p_lateral", "out_of_distribution", "ood_score",
    "warnings", "runtime",
)  # fmt: skip


def serve_numbers(model: Path, films: list[Path], runtime: str) -> list[dict[str, Any]]:
    """`POST /v1/predict` of each film to the app serving `model` on `runtime`."""
    from fastapi.testclient import TestClient

    from cxrkit.serve import ServeSettings, create_app

    settings = ServeSettings(token=None, decode_workers=0, rate_limit=0)
    rows = []
    with TestClient(create_app(model, settings=settings, runtime=runtime)) as client:
        for film in films:
            r = client.post("/v1/predict", files={"file": (film.name, film.read_bytes())})
            if r.status_code != 200:
                raise RuntimeError(f"/v1/predict {film.name}: {r.status_code} {r.text[:500]}")
            body = r.json()
            rows.append({"film": film.name, **{k: body.get(k) for k in SERVE_KEYS}})
    return rows


def _sr_groups(path: Path) -> list[dict[str, Any]]:
    """Every measurement group of an SR: finding, measurements, qualitative evaluations."""
    import highdicom as hd

    groups = []
    for g in hd.sr.srread(path).content.get_image_measurement_groups():
        groups.append(
            {
                "finding": [g.finding_type.value, g.finding_type.scheme_designator,
                            g.finding_type.meaning],
                "measurements": {m.name.meaning: float(m.value) for m in g.get_measurements()},
                "evaluations": {
                    q.name.meaning: q.value.meaning for q in g.get_qualitative_evaluations()
                },
            }
        )  # fmt: skip
    return sorted(groups, key=lambda g: g["finding"])


def dicom_out_numbers(model: Path, film: Path, out: Path) -> dict[str, Any]:
    """`cxr predict MODEL FILM --dicom-out`: the SR's findings and the overlay's pixels."""
    import pydicom

    cxr("predict", model, film, "--out", out / "preds.json", "--dicom-out", out / "dicom",
        "--num-workers", "0", "--device", "cpu")  # fmt: skip
    uid = pydicom.dcmread(film, stop_before_pixels=True).SOPInstanceUID
    row = json.loads((out / "preds.json").read_text())[0]
    overlay = pydicom.dcmread(out / "dicom" / f"{uid}_overlay.dcm")
    pixels = np.ascontiguousarray(overlay.pixel_array)
    return {
        "label": row.get("label"),
        "probabilities": row.get("probabilities"),
        "groups": _sr_groups(out / "dicom" / f"{uid}_sr.dcm"),
        "overlay_shape": list(pixels.shape),
        "overlay_mean": float(pixels.mean()),
        "overlay_sha256": hashlib.sha256(pixels.tobytes()).hexdigest(),
    }


#: Fields of a card's `site_calibration` record that name a place or a time.
RECORD_SKIP = ("set", "date", "cxrkit_version", "warnings", "labels_sha256")


#: Model and `cxr calibrate --method` of each calibrate check.
CALIBRATIONS = {"binary37": "sensitivity:0.9", "sharp": "youden", "scored": "youden"}


def calibrate_numbers(model: Path, data: Path, method: str, out: Path) -> dict[str, Any]:
    """`cxr calibrate MODEL --data SET --method M --resamples 20`: the new card's decision
    and record, and `cxr predict` of the new model on the set."""
    new = out / "calibrated.safetensors"
    cxr("calibrate", model, "--data", data, "--out", new, "--method", method,
        "--resamples", "20", "--n-bootstrap", "0", "--folds", "3")  # fmt: skip
    card = card_json(new)
    record = {k: v for k, v in (card.get("site_calibration") or {}).items()
              if k not in RECORD_SKIP}  # fmt: skip
    cxr("predict", new, data / "images", "--out", out / "preds.json",
        "--num-workers", "0", "--device", "cpu")  # fmt: skip
    rows = json.loads((out / "preds.json").read_text())
    return {
        "thresholds": card.get("thresholds"),
        "threshold_method": card.get("threshold_method"),
        "probability_calibration": card.get("probability_calibration") or {"method": "none"},
        "prior_shift": card.get("prior_shift"),
        "training_thresholds": card.get("training_thresholds"),
        "site_calibration": record,
        "predictions": {
            Path(r["path"]).name: {"label": r.get("label"), "probabilities": r.get("probabilities")}
            for r in rows
        },
    }


def numbers(shared_data: Path, workdir: Path) -> dict[str, Any]:
    """Every section's numbers, for the models built in `workdir`."""
    samples = shared_data / "samples"
    models = build_models(workdir / "models")
    data = site_set(shared_data / "kermany_site", workdir / "site")
    explain_films = [data / "images" / sorted(os.listdir(data / "images"))[0], samples / SIIM]
    serve_films = [samples / f for f in SERVE_FILMS]
    out = workdir / "out"
    return {
        "evaluate": {
            key: evaluate_numbers(models[key.split("/")[0]], data, key.split("/")[1], out / key)
            for key in ("binary37/torch", "binary37/onnx", "scored/torch")
        },
        "explain": {
            name: explain_numbers(models[name], explain_films, out / f"ex-{name}")
            for name in ("binary37", "multi3")
        },
        "serve": {
            f"{name}/{rt}": serve_numbers(models[name], serve_films, rt)
            for name in ("binary37", "multi3", "scored")
            for rt in RUNTIMES
        },
        "dicom_out": {
            name: dicom_out_numbers(models[name], samples / SIIM, out / f"dcm-{name}")
            for name in ("binary37", "multi3", "scored")
        },
        "calibrate": {
            name: calibrate_numbers(models[name], data, method, out / f"cal-{name}")
            for name, method in CALIBRATIONS.items()
        },
    }


def screen_model_id() -> str:
    """sha256 of the shipped screening (polarity) model file."""
    from cxrkit.polarity.model import DEFAULT_MODEL

    return hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()


def lung_model_id() -> str:
    """sha256 of the shipped lung model file (explain's `lung_energy`)."""
    from cxrkit.segment.model import default_model_path

    return hashlib.sha256(default_model_path().read_bytes()).hexdigest()


# ---- comparing ---------------------------------------------------------------------------


def compare(
    expected: Any, got: Any, tol: float = 1e-6, skip: frozenset[str] = frozenset()
) -> list[str]:
    """Differences between two JSON values: floats beyond `tol` (`LOOSE` keys: their own),
    anything else unequal; keys in `skip` are not compared."""
    return list(_diff(expected, got, tol, skip, "$"))


def _diff(a: Any, b: Any, tol: float, skip: frozenset[str], where: str) -> Iterator[str]:
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        keys = (set(a) | set(b)) - skip
        for k in sorted(keys, key=str):
            if k not in a or k not in b:
                yield f"{where}.{k}: {'missing' if k not in b else 'new'}"
            else:
                yield from _diff(a[k], b[k], LOOSE.get(k, tol), skip, f"{where}.{k}")
    elif isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            yield f"{where}: length {len(a)} != {len(b)}"
        else:
            for i, (x, y) in enumerate(zip(a, b, strict=True)):
                yield from _diff(x, y, tol, skip, f"{where}[{i}]")
    elif _is_float(a) and _is_float(b):
        same = a == b if isinstance(a, int) and isinstance(b, int) else abs(a - b) <= tol
        if not same:  # NaN is never the same
            yield f"{where}: {a!r} != {b!r}"
    elif type(a) is not type(b) or a != b:
        yield f"{where}: {a!r} != {b!r}"


def _is_float(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def main() -> None:
    """Write the fixture from the code as it is now."""
    import tempfile

    import cxrkit

    shared = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else SHARED_DATA
    with tempfile.TemporaryDirectory() as tmp:
        got = numbers(shared, Path(tmp))
    fixture = {
        "written_by": f"cxrkit {cxrkit.__version__}",
        "screen_model_sha256": screen_model_id(),
        "lung_model_sha256": lung_model_id(),
        **got,
    }
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE} with {Path(cxrkit.__file__).parent}")


if __name__ == "__main__":
    main()
