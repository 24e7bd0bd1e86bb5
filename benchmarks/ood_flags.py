"""Out-of-distribution flag rates of a trained model on its held-out films and other sources.

A model's feature reference should flag few of the films like its training films (its
own test split) and many films of other sources (adult NIH thumbnails, mixed-source COVID
films). Prints the flagged share per set, with a Wilson 95 % CI, and the time taken; writes
benchmarks/results/ood_flags.json.

    .venv/bin/python benchmarks/ood_flags.py runs/demo
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path

from cxrkit.classifier.api import predict
from cxrkit.evaluate.proportions import wilson_interval

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def split_films(run: Path, data: Path, split: str) -> list[Path]:
    """The films of one split of a run's split.csv."""
    with (run / "split.csv").open(newline="") as fh:
        return [data / r["path"] for r in csv.DictReader(fh) if r["split"] == split]


def all_films(data: Path) -> list[Path]:
    """Every film listed in a set's labels.csv."""
    with (data / "labels.csv").open(newline="") as fh:
        return [data / r["path"] for r in csv.DictReader(fh)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run", type=Path, help="run directory of a Kermany-trained model")
    ap.add_argument("--num-workers", type=int, default=2)
    args = ap.parse_args()
    sets = {
        "kermany_pneumonia held-out test split": split_films(
            args.run, DATA / "kermany_pneumonia", "test"
        ),
        "kermany_site (another site, same population)": all_films(DATA / "kermany_site"),
        "nih1000 (adult NIH thumbnails)": all_films(DATA / "nih1000"),
        "lungmasks_v7 (COVID collection, mixed sources)": all_films(DATA / "lungmasks_v7"),
    }
    rows = []
    for name, files in sets.items():
        t0 = time.time()
        preds = [
            r for r in predict(args.run, files, num_workers=args.num_workers) if "error" not in r
        ]
        flagged = sum(bool(r["out_of_distribution"]) for r in preds)
        ci = wilson_interval(flagged, len(preds))
        rows.append(
            {
                "set": name,
                "films": len(preds),
                "flagged": flagged,
                "rate": flagged / len(preds),
                "rate_ci95": ci,
                "seconds": round(time.time() - t0, 1),
            }
        )
        r = rows[-1]
        print(
            f"{name:<50} {r['films']:>5} films  flagged {r['flagged']:>4} "
            f"({r['rate']:.1%}, CI {ci[0]:.1%}-{ci[1]:.1%})  {r['seconds']:.0f}s",
            flush=True,
        )
    out = REPO / "benchmarks" / "results" / "ood_flags.json"
    out.write_text(json.dumps({"model": args.run.name, "sets": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
