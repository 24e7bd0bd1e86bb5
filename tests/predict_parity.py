"""`cxr predict` parity fixture: seeded model files, their predictions on the shared samples.

Run as a script to (re)write `tests/fixtures/predict_parity.json`:

    .venv/bin/python tests/predict_parity.py [/work/shared/data/samples]

The fixture was first written by the code before the `Classifier` refactor (issue 13);
`tests/test_predict_parity.py` rebuilds the same model files from their seeds and checks
that today's `cxr predict` gives the same labels and probabilities (to 1e-6), on the torch
and the ONNX runtime. Two models: a random `small_cnn` with a feature reference (OOD
columns) and a temperature calibration in its card, and one whose card says `crop: lungs`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FIXTURE = HERE / "fixtures" / "predict_parity.json"
CXR = Path(sys.executable).parent / "cxr"
RUNTIMES = ("torch", "onnx")
#: Columns compared exactly (text) and numerically (probabilities, ood_score).
TEXT_COLUMNS = ("label", "error", "out_of_distribution")
#: Columns of the shipped screening model: compared only while its file is the same one.
SCREEN_COLUMNS = ("not_cxr", "polarity", "warning")


def build_models(folder: Path) -> dict[str, Path]:
    """Write the two seeded model files into `folder`; returns {name: path}."""
    sys.path.insert(0, str(HERE))
    import torch

    from cxrkit.models.model_file import load_model_file, save_model_file
    from cxrkit.models.ood import fit_feature_reference
    from serve_helpers import save_random_model

    folder.mkdir(parents=True, exist_ok=True)
    scored = save_random_model(folder / "scored.safetensors", seed=1)
    net, _ = load_model_file(scored)
    card = card_json(scored)
    gen = torch.Generator().manual_seed(2)
    size = int(card["preprocessing"]["size"])
    with torch.inference_mode():
        feats = net.features(torch.rand(96, 1, size, size, generator=gen)).numpy()
    reference = fit_feature_reference(feats[:64], feats[64:], components=8)
    card = {
        **card,
        "ood": reference.card(),
        "probability_calibration": {"method": "temperature", "params": {"temperature": 1.7}},
    }
    save_model_file(scored, net, card, extra_tensors=reference.tensors())

    lungs = save_random_model(folder / "lungs.safetensors", seed=3)
    net, _ = load_model_file(lungs)
    card = card_json(lungs)
    card["preprocessing"] = {**card["preprocessing"], "crop": "lungs"}
    save_model_file(lungs, net, card)
    return {"scored": scored, "lungs": lungs}


def card_json(path: Path) -> dict[str, Any]:
    """A model file's card JSON as stored (safetensors metadata), whatever cxrkit's API."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return json.loads((fh.metadata() or {})["cxrkit_card"])


def run_predict(model: Path, samples: Path, runtime: str, out: Path) -> list[dict[str, Any]]:
    """`cxr predict MODEL SAMPLES --runtime R --out out.json` in a child process; its rows."""
    cmd = [
        str(CXR),
        "predict",
        str(model),
        str(samples),
        "--runtime",
        runtime,
        "--out",
        str(out),
        "--num-workers",
        "0",
        "--device",
        "cpu",
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr[-2000:]}")
    rows = json.loads(out.read_text())
    for r in rows:  # paths relative to the samples folder: the fixture names no local folder
        r["path"] = Path(r["path"]).relative_to(samples).as_posix()
    return rows


def predictions(samples: Path, workdir: Path) -> dict[str, list[dict[str, Any]]]:
    """{'MODEL/RUNTIME': rows} for both models and both runtimes."""
    models = build_models(workdir / "models")
    return {
        f"{name}/{runtime}": run_predict(path, samples, runtime, workdir / f"{name}-{runtime}.json")
        for name, path in models.items()
        for runtime in RUNTIMES
    }


def screen_model_id() -> str:
    """sha256 of the shipped screening (polarity) model file: its columns depend on it."""
    import hashlib

    from cxrkit.polarity.model import DEFAULT_MODEL

    return hashlib.sha256(DEFAULT_MODEL.read_bytes()).hexdigest()


def lung_model_id() -> str:
    """sha256 of the shipped lung model file: the `crop: lungs` rows depend on it."""
    import hashlib

    from cxrkit.segment.model import default_model_path

    return hashlib.sha256(default_model_path().read_bytes()).hexdigest()


def compare(
    expected: list[dict], got: list[dict], tol: float = 1e-6, screen: bool = True
) -> list[str]:
    """Differences in labels, probabilities (> tol), OOD score and (with `screen`) the
    screening columns."""
    problems = []
    if [r["path"] for r in expected] != [r["path"] for r in got]:
        return [f"paths differ: {[r['path'] for r in got]}"]
    columns = TEXT_COLUMNS + (SCREEN_COLUMNS if screen else ())
    for a, b in zip(expected, got, strict=True):
        for col in columns:
            if a.get(col) != b.get(col):
                problems.append(f"{a['path']}: {col} {a.get(col)!r} != {b.get(col)!r}")
        pa, pb = a.get("probabilities") or {}, b.get("probabilities") or {}
        if set(pa) != set(pb):
            problems.append(f"{a['path']}: classes {sorted(pa)} != {sorted(pb)}")
        for c in pa:
            if c in pb and abs(pa[c] - pb[c]) > tol:
                problems.append(f"{a['path']}: p({c}) {pa[c]} != {pb[c]}")
        sa, sb = a.get("ood_score"), b.get("ood_score")
        if (sa is None) != (sb is None) or (sa is not None and abs(sa - sb) > 2e-4):
            problems.append(f"{a['path']}: ood_score {sa} != {sb}")
    return problems


def main() -> None:
    """Write the fixture from the code as it is now."""
    import tempfile

    samples = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/samples")
    with tempfile.TemporaryDirectory() as tmp:
        rows = predictions(samples.resolve(), Path(tmp))
    FIXTURE.parent.mkdir(exist_ok=True)
    fixture = {
        "screen_model_sha256": screen_model_id(),
        "lung_model_sha256": lung_model_id(),
        "rows": rows,
    }
    FIXTURE.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
    print(f"wrote {FIXTURE} ({sum(len(v) for v in rows.values())} rows)")


if __name__ == "__main__":
    main()
