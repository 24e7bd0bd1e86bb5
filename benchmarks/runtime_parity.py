"""Accuracy parity of the runtimes: AUC and accuracy of torch, onnx, onnx-int8 and openvino
beside each other, on kermany_site (another site) and the run's internal test split.

Every runtime scores the same prepared films (`Classifier.prepare`), so differences are the
runtime's alone. A run without `model.int8.onnx` gets one first (`quantize_model`:
calibrated on 256 films of its training split). int8 passes when it loses at most 0.002
AUC and 0.5 points of accuracy against fp32 (torch) on every set; only then may it be a
default or be counted in the speed table (benchmarks/predict_throughput.py reads this).
Resumable: rows already in the output are kept, missing ones are added, the file is
rewritten after each row.

    .venv/bin/python benchmarks/runtime_parity.py runs/int8_demo runs/int8_densenet \
        [--data ../shared/data/kermany_pneumonia] [--out benchmarks/results/runtime_parity.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "results" / "runtime_parity.json"
#: (row name, Classifier.load runtime, which file: the model file or the int8 graph)
RUNTIMES = (
    ("torch", "torch", "model"),
    ("onnx", "onnx", "model"),
    ("openvino", "openvino", "model"),
    ("onnx-int8", "onnx-int8", "int8"),
    ("openvino-int8", "openvino", "int8"),  # OpenVINO running the same int8 (QDQ) graph
    ("openvino-bf16", "openvino-bf16", "model"),  # fp32 graph, bfloat16 arithmetic
)
MAX_AUC_LOSS, MAX_ACCURACY_LOSS = 0.002, 0.005
SETS = ("kermany_site", "internal test")


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="+", type=Path, help="run folders (model.safetensors, split.csv)")
    ap.add_argument("--data", type=Path, default=SHARED / "kermany_pneumonia")
    ap.add_argument("--site", type=Path, default=SHARED / "kermany_site")
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    report = json.loads(args.out.read_text()) if args.out.is_file() else {"rows": []}
    done = {(r["model"], r["runtime"], r["set"]) for r in report["rows"]}
    for run in args.runs:
        int8 = ensure_int8(run, args.data)
        sets = None
        for row_name, runtime, which in RUNTIMES:
            todo = [s for s in SETS if (run.name, row_name, s) not in done]
            if not todo:
                continue
            from cxrkit.classifier import Classifier

            sets = sets or load_sets(run, args.data, args.site)
            source = int8 if which == "int8" else run
            clf = Classifier.load(source, runtime, device="cpu", threads=args.threads)
            for set_name in todo:
                films, truth = sets[set_name]
                t0 = time.perf_counter()
                report["rows"].append(
                    {
                        "model": run.name,
                        "architecture": clf.card.architecture,
                        "runtime": row_name,
                        "set": set_name,
                        **score(clf, films, truth),
                        "seconds": round(time.perf_counter() - t0, 2),
                    }
                )
                print(json.dumps(report["rows"][-1]), flush=True)
                save(report, args.out)
    report["verdicts"] = verdicts(report["rows"])
    report["load_avg"] = os.getloadavg()
    save(report, args.out)
    print_table(report)
    return report


def ensure_int8(run: Path, data: Path) -> Path:
    """The run's int8 graph, made (calibrated on its training split) when missing."""
    path = run / "model.int8.onnx"
    if not path.is_file():
        from cxrkit.export.quantize import quantize_model

        t0 = time.perf_counter()
        quantize_model(run, path, data)
        print(f"quantized {run.name} in {time.perf_counter() - t0:.0f} s", flush=True)
    return path


def load_sets(run: Path, data: Path, site: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{set name: (prepared films (N, 1, S, S), class indices)} for both sets."""
    from cxrkit.classifier import Classifier
    from cxrkit.data.table import load_table
    from cxrkit.export.quantize import _truth, prepared_films, split_members

    clf = Classifier.load(run, "torch", device="cpu")
    out = {}
    for name, source, part in (("kermany_site", site, None), ("internal test", data, "test")):
        table = load_table(source, label_column=clf.card.label_column or "label")
        idx = split_members(run / "split.csv" if part else None, table, part or "")
        films, kept = prepared_films(clf, table, idx)
        out[name] = (films, _truth(table, kept, clf.class_names))
    return out


def score(clf, films: np.ndarray, truth: np.ndarray, batch: int = 32) -> dict:
    """AUC, accuracy (the card's threshold) and the probabilities' checksum of one runtime."""
    from sklearn.metrics import roc_auc_score

    probs = np.concatenate([clf.probs(films[s : s + batch]) for s in range(0, len(films), batch)])
    if not np.isfinite(probs).all():
        raise SystemExit(f"{clf.runtime}: probabilities are not finite")
    labels = [clf.label(p)["label"] for p in probs]
    names = clf.class_names
    acc = float(np.mean([lab == names[t] for lab, t in zip(labels, truth, strict=True)]))
    return {
        "films": int(len(films)),
        "auc": float(roc_auc_score(truth, probs[:, 1])),
        "accuracy": acc,
        "mean_p_positive": float(probs[:, 1].mean()),
    }


def verdicts(rows: list[dict]) -> dict:
    """Per model and runtime: the largest AUC / accuracy loss against torch and pass/fail."""
    base = {(r["model"], r["set"]): r for r in rows if r["runtime"] == "torch"}
    out: dict = {}
    for r in rows:
        ref = base.get((r["model"], r["set"]))
        if ref is None or r["runtime"] == "torch":
            continue
        v = out.setdefault(r["model"], {}).setdefault(
            r["runtime"], {"max_auc_loss": 0.0, "max_accuracy_loss": 0.0}
        )
        v["max_auc_loss"] = max(v["max_auc_loss"], ref["auc"] - r["auc"])
        v["max_accuracy_loss"] = max(v["max_accuracy_loss"], ref["accuracy"] - r["accuracy"])
        v["passes"] = (
            v["max_auc_loss"] <= MAX_AUC_LOSS and v["max_accuracy_loss"] <= MAX_ACCURACY_LOSS
        )
    return out


def save(report: dict, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(report, indent=2))
    tmp.replace(out)


def print_table(report: dict) -> None:
    print(f"\n{'model':<18} {'runtime':<14} {'set':<14} {'AUC':>7} {'accuracy':>9}")
    for r in report["rows"]:
        print(
            f"{r['model']:<18} {r['runtime']:<14} {r['set']:<14} {r['auc']:>7.4f} "
            f"{r['accuracy']:>9.4f}"
        )
    for model, by in report["verdicts"].items():
        for runtime, v in by.items():
            print(
                f"{model} {runtime}: max AUC loss {v['max_auc_loss']:+.4f}, max accuracy loss "
                f"{v['max_accuracy_loss']:+.4f} -> {'passes' if v['passes'] else 'FAILS'}"
            )


if __name__ == "__main__":
    main()
