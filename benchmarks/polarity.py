"""Polarity benchmark: accuracy per source on patient-held-out films, and films per second.

Every film of the test split (the same stable patient hash split as `cxr polarity train`)
is scored as read and inverted. Throughput is measured model-only (films already at the
input size, batches of 256, channels-last, inference mode) and end to end from disk
(read + decode + resize in 2 DataLoader workers, then the model), for 1 and 2 threads.
Also prints the guard's false-alarm rate on those films, frontal films called lateral,
lateral films called lateral, and the guard's detection rate on
held-out generated non-films. Writes benchmarks/results/polarity_<split>.json.

    .venv/bin/python benchmarks/polarity.py [--model PATH] [--split test|all] [--data DIR ...]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cxrkit.io import read_image, resize_film
from cxrkit.polarity import check_paths, load_polarity_model
from cxrkit.polarity.films import assign_splits, discover
from cxrkit.polarity.synth import make_examples

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SETS = ("kermany_pneumonia", "nih1000", "covid_lungmasks", "lungmasks_v7", "samples")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="polarity model (default: the shipped one)")
    ap.add_argument("--data", nargs="*", default=[str(DATA / s) for s in SETS])
    ap.add_argument("--split", default="test", choices=("test", "val", "train", "all"))
    ap.add_argument("--exclude", nargs="*", default=["Fake_MONOHR1.dcm"])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    model = load_polarity_model(args.model)
    refs = assign_splits([r for d in args.data for r in discover(Path(d), args.exclude)])
    refs = [r for r in refs if args.split == "all" or r.split == args.split]
    films, sources = [], []
    for r in refs:
        films.append(resize_film(read_image(r.path)[0], model.input_size, "squash"))
        sources.append(r.source)
    x = np.stack(films).astype(np.float32)
    src = np.array(sources)
    report: dict = {"model": str(model.path), "split": args.split, "accuracy": {}}

    p_pos, p_neg = model.probs(x), model.probs(1.0 - x)
    ok = np.r_[p_pos[:, 0] > p_pos[:, 1], p_neg[:, 1] > p_neg[:, 0]]
    alarm = np.r_[p_pos[:, 2], p_neg[:, 2]] >= model.not_cxr_threshold
    lateral = np.r_[p_pos[:, 3], p_neg[:, 3]] >= model.lateral_threshold
    views = np.array([r.view for r in refs] * 2)
    both = np.r_[src, src]
    print(f"polarity accuracy, {args.split} split, each film as read and inverted")
    for name in [*sorted(set(src)), "all"]:
        m = both == name if name != "all" else np.ones_like(ok)
        acc, fa = float(ok[m].mean()), float(alarm[m].mean())
        front = m & (views == "frontal")
        va = float(lateral[front].mean())
        report["accuracy"][name] = {
            "n": int(m.sum()),
            "accuracy": acc,
            "guard_false_alarm": fa,
            "frontal_called_lateral": va,
        }
        print(
            f"  {name:20s} n={int(m.sum()):5d}  accuracy {acc:.4f}  guard false alarms {fa:.4f}"
            f"  frontal called lateral {int(lateral[front].sum())}/{int(front.sum())}"
        )
    lat = views == "lateral"
    if lat.any():
        report["lateral_detection"] = {"n": int(lat.sum()), "rate": float(lateral[lat].mean())}
        print(
            f"lateral films (as read and inverted) called lateral: "
            f"{int(lateral[lat].sum())}/{int(lat.sum())}; called not-a-chest-film: "
            f"{int(alarm[lat].sum())}"
        )

    held, kinds = make_examples("test", 100, 4242, model.input_size, films=None)
    flagged = model.probs(held.astype(np.float32) / 255)[:, 2] >= model.not_cxr_threshold
    report["guard_detection"] = float(flagged.mean())
    per_kind = {k: float(flagged[np.array(kinds) == k].mean()) for k in sorted(set(kinds))}
    report["guard_detection_per_kind"] = per_kind
    print(f"guard detection on held-out generated non-films: {flagged.mean():.4f} {per_kind}")

    report["films_per_second"] = {}
    batch = torch.from_numpy(np.resize(x, (2048, *x.shape[1:])))
    paths = [r.path for r in refs]
    for threads in (1, 2):
        torch.set_num_threads(threads)
        model.probs(batch[:256])  # warm-up
        best = min(_timed(lambda: model.probs(batch)) for _ in range(args.repeats))
        t0 = time.perf_counter()
        n = sum(1 for row in check_paths(paths, model, num_workers=2) if "error" not in row)
        e2e = n / (time.perf_counter() - t0)
        report["films_per_second"][f"threads={threads}"] = {
            "model_only": len(batch) / best,
            "end_to_end_from_disk": e2e,
        }
        print(
            f"threads={threads}: model-only {len(batch) / best:8.0f} films/s   "
            f"end-to-end from disk {e2e:6.0f} films/s ({n} films, 2 reader workers)"
        )
    out = REPO / "benchmarks" / "results" / f"polarity_{args.split}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    print(f"wrote {out}")


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


if __name__ == "__main__":
    main()
