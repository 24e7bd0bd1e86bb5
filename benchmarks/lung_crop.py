"""Kermany pneumonia classifier with and without `crop: lungs`, side by side.

Both arms use configs/demo.yaml (frozen EfficientNet-Lite0 features + MLP head) and the
same patient-disjoint split.csv; the only difference is `crop`, which crops every film to
the shipped lung U-Net's lung box (plus 10 % margin) before resizing. Prints AUC with
95 % bootstrap CI, accuracy, sensitivity, specificity and wall time per arm, and writes
benchmarks/results/lung_crop.json.

    .venv/bin/python benchmarks/lung_crop.py [--data ../shared/data/kermany_pneumonia]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from kermany import print_rows, result_row  # sibling script: one table format

from cxrkit.data.splits import make_splits, write_split_csv
from cxrkit.data.table import load_table
from cxrkit.train import load_config, train

REPO = Path(__file__).resolve().parents[1]
# The crop arm runs first: CNN codes of the plain arm are often cached already (same
# recipe and split as benchmarks/kermany.py), so its wall time can be head training only.
ARMS = {"crop: lungs": {"crop": "lungs"}, "no crop (demo.yaml)": {}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "kermany_pneumonia"))
    ap.add_argument("--out", default=str(REPO / "runs" / "bench_lung_crop"))
    ap.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    table = load_table(args.data)
    split_csv = out / "split.csv"
    write_split_csv(split_csv, table, make_splits(table, val=0.15, test=0.15, seed=0))
    rows = []
    for name, overrides in ARMS.items():
        cfg = load_config(args.config, {**overrides, "split_file": str(split_csv)})
        t0 = time.time()
        m = train(
            args.data, out / ("crop_lungs" if cfg.crop else "no_crop"), cfg, show_progress=False
        ).metrics
        rows.append(result_row("arm", name, m, time.time() - t0))
        print_rows(rows, "arm")
    results = REPO / "benchmarks" / "results"
    results.mkdir(exist_ok=True)
    (results / "lung_crop.json").write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
