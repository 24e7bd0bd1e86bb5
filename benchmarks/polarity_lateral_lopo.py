"""Lateral-view detection of the screening net, leave one patient out (LOPO), resumable.

The shipped screening model is a base stage (no lateral film) plus a short view stage
(fine-tune with the lateral films of train/val patients). A full retrain per patient is
~10 min on 2 cores, so each fold repeats only the view stage, from the base of the given
run (`cxr polarity train ... --out RUN` writes RUN/base.safetensors), with the config of
RUN/polarity.safetensors and without the held-out patient's films. The lateral patients of
the test part of the shared split are never in the view stage, so their fold is the view
stage with nobody held out: the shipped procedure itself (the script checks that fold
against RUN/polarity.safetensors). Per fold it also counts frontal test films called
lateral (false alarms, films as read and inverted) and polarity accuracy on the test split.

    .venv/bin/python benchmarks/polarity_lateral_lopo.py --run runs/polarity_v2 \
        [--out benchmarks/results/polarity_lateral_lopo] [--cache-dir .cache/polarity]

Folds already in --out are reused (delete a fold's JSON to rerun it). Prints the table
and writes OUT/summary.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from cxrkit.evaluate.proportions import wilson_interval
from cxrkit.models.model_file import read_card
from cxrkit.polarity.net import LATERAL, NEGATIVE, NOT_CXR, POSITIVE
from cxrkit.polarity.train import (
    PolarityTrainConfig,
    TrainingData,
    fit_view_stage,
    load_base,
    net_probs,
    prepare_data,
)

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
SETS = ("kermany_pneumonia", "nih1000", "covid_lungmasks", "lungmasks_v7", "samples")
NOBODY = "none-held-out"


def config_of(run: Path) -> PolarityTrainConfig:
    """The training config saved in RUN/polarity.safetensors (tuples restored)."""
    saved = read_card(run / "polarity.safetensors").provenance.training["config"]
    fields = PolarityTrainConfig.__dataclass_fields__
    kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in saved.items() if k in fields}
    return PolarityTrainConfig(**kwargs)


def folds(data: TrainingData, cfg: PolarityTrainConfig) -> dict[str, list[str]]:
    """Fold name -> patients whose lateral films it scores (held out of that fold)."""
    lat = data.view == "lateral"
    out: dict[str, list[str]] = {}
    for patient in sorted(set(data.patient[lat]), key=lambda p: (len(p), p)):
        part = str(data.split[lat & (data.patient == patient)][0])
        if part in cfg.lateral_parts:
            out[patient] = [patient]
        else:
            out.setdefault(NOBODY, []).append(patient)
    return out


def score_fold(
    net: torch.nn.Module, thresholds: dict, data: TrainingData, scored: list[str]
) -> dict:
    """Held-out lateral films (as read and inverted) and the test split's frontal films."""
    t_lat, t_nc = thresholds["lateral"], thresholds["not_cxr"]
    lat = (data.view == "lateral") & np.isin(data.patient, scored)
    x = data.plain[lat].astype(np.float32) / 255
    p, p_inv = net_probs(net, x), net_probs(net, 1.0 - x)
    films = [
        {
            "path": ref.path.name,
            "patient": ref.patient,
            "part": ref.split,
            "p_lateral": round(float(a[LATERAL]), 4),
            "lateral": bool(a[LATERAL] >= t_lat),
            "lateral_inverted": bool(b[LATERAL] >= t_lat),
            "not_cxr": bool(a[NOT_CXR] >= t_nc or b[NOT_CXR] >= t_nc),
            "polarity_right": bool(a[POSITIVE] > a[NEGATIVE] and b[NEGATIVE] > b[POSITIVE]),
        }
        for ref, a, b in zip(np.array(data.refs, dtype=object)[lat], p, p_inv, strict=True)
    ]
    test = data.split == "test"
    front = test & (data.view == "frontal")
    xf = data.plain[front].astype(np.float32) / 255
    pf = np.concatenate([net_probs(net, xf), net_probs(net, 1.0 - xf)])
    xt = data.plain[test].astype(np.float32) / 255
    pt, pt_inv = net_probs(net, xt), net_probs(net, 1.0 - xt)
    right = np.r_[pt[:, POSITIVE] > pt[:, NEGATIVE], pt_inv[:, NEGATIVE] > pt_inv[:, POSITIVE]]
    return {
        "thresholds": thresholds,
        "films": films,
        "frontal_test_both_ways": int(len(pf)),
        "frontal_called_lateral": int((pf[:, LATERAL] >= t_lat).sum()),
        "frontal_max_p_lateral": round(float(pf[:, LATERAL].max()), 4),
        "polarity_test_both_ways": int(len(right)),
        "polarity_right": int(right.sum()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, required=True, help="run folder of `cxr polarity train`")
    ap.add_argument("--data", nargs="*", default=[str(DATA / s) for s in SETS])
    ap.add_argument("--exclude", nargs="*", default=["Fake_MONOHR1.dcm"])
    ap.add_argument("--cache-dir", default=str(REPO / ".cache" / "polarity"))
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/polarity_lateral_lopo")
    args = ap.parse_args()
    t0 = time.time()
    cfg = config_of(args.run)
    torch.set_num_threads(cfg.threads)
    data = prepare_data(args.data, cfg, args.exclude, args.cache_dir)
    base = load_base(args.run / "base.safetensors")
    args.out.mkdir(parents=True, exist_ok=True)
    results = {}
    for name, scored in folds(data, cfg).items():
        path = args.out / f"fold-{name}.json"
        if path.is_file():
            results[name] = json.loads(path.read_text())
            continue
        t = time.time()
        holdout = [] if name == NOBODY else scored
        net, thresholds = fit_view_stage(base, data, cfg, holdout)
        res = {"holdout": holdout, **score_fold(net, thresholds, data, scored)}
        if name == NOBODY:  # the shipped procedure: does it reproduce the run's model?
            shipped = load_base(args.run / "polarity.safetensors")
            x = data.plain[data.split == "test"].astype(np.float32) / 255
            diff = np.abs(net_probs(net, x) - net_probs(shipped, x)).max()
            res["max_abs_diff_vs_run_model"] = float(diff)
        res["wall_seconds"] = round(time.time() - t, 1)
        path.write_text(json.dumps(res, indent=2))
        results[name] = res
        print(f"fold {name}: {res['wall_seconds']:.0f}s", flush=True)
    summary = report(results)
    summary["wall_seconds_this_call"] = round(time.time() - t0, 1)
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2))


def report(results: dict[str, dict]) -> dict:
    """Print the per-film table and the totals; return them."""
    films = [f | {"fold": name} for name, r in results.items() for f in r["films"]]
    print(f"{'patient':>8} {'part':>5}  {'film':<44} {'p_lat':>6}  lateral  inverted  fold")
    for f in sorted(films, key=lambda f: (len(f["patient"]), f["patient"], f["path"])):
        print(
            f"{f['patient']:>8} {f['part']:>5}  {f['path'][:44]:<44} {f['p_lateral']:>6.3f}  "
            f"{'yes' if f['lateral'] else 'NO':>7}  {'yes' if f['lateral_inverted'] else 'NO':>8}"
            f"  {f['fold']}"
        )
    n = len(films)
    hit = sum(f["lateral"] for f in films)
    hit_inv = sum(f["lateral_inverted"] for f in films)
    patients = {f["patient"] for f in films}
    alarms = [r["frontal_called_lateral"] for r in results.values()]
    pol = [r["polarity_right"] / r["polarity_test_both_ways"] for r in results.values()]
    summary = {
        "folds": len(results),
        "patients": len(patients),
        "films": n,
        "detected_as_read": hit,
        "rate_as_read": hit / n,
        "wilson95_as_read": wilson_interval(hit, n),
        "detected_inverted": hit_inv,
        "rate_inverted": hit_inv / n,
        "wilson95_inverted": wilson_interval(hit_inv, n),
        "lateral_called_not_cxr": sum(f["not_cxr"] for f in films),
        "lateral_polarity_right": sum(f["polarity_right"] for f in films),
        "frontal_test_both_ways": next(iter(results.values()))["frontal_test_both_ways"],
        "frontal_called_lateral_per_fold": alarms,
        "polarity_test_accuracy_min_over_folds": min(pol),
        "fold_wall_seconds": {k: r["wall_seconds"] for k, r in results.items()},
    }
    lo, hi = summary["wilson95_as_read"]
    print(
        f"\nlateral detection, LOPO over {len(patients)} patients / {n} films: {hit}/{n} = "
        f"{hit / n:.3f} (Wilson 95% CI {lo:.3f}-{hi:.3f}); inverted films {hit_inv}/{n}"
    )
    print(
        f"frontal test films called lateral (both ways, n={summary['frontal_test_both_ways']}): "
        f"per fold {alarms}; polarity on the test split, worst fold {min(pol):.4f}"
    )
    print(f"laterals flagged not-a-chest-film: {summary['lateral_called_not_cxr']}/{n}")
    if NOBODY in results and "max_abs_diff_vs_run_model" in results[NOBODY]:
        print(
            f"shipped-procedure fold vs the run's model: max |dp| = "
            f"{results[NOBODY]['max_abs_diff_vs_run_model']:.2e}"
        )
    return summary


if __name__ == "__main__":
    main()
