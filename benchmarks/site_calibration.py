"""Does `cxr calibrate` help or hurt on films it never saw? The kept-back check, many times.

For each site case, the films are split many times (patient-grouped, stratified, seeded)
into a **calibration** part and an **unseen** part. The calibration part goes through the
same function `cxr calibrate` uses (`cxrkit.site.guard.guarded_fit`: fit, resampled gain,
guard); the model it would write is scored on the unseen part beside the model as given.
Reported per case and method: mean accuracy change on the unseen films, its spread (sd),
the share of splits where it hurt (accuracy change < 0), how often the guard wrote the
change, and the same figures for the change written unguarded (what `cxr calibrate` did
before the guard).

Cases (network probabilities are computed once per film and cached):

- ``kermany_site``: films of the Kermany official test split, another site of the
  training source; the demo's threshold already carries over (nothing to fix).
- ``source_test``: the demo run's own held-out test patients (split.csv, never trained on
  or chosen on); the demo's `midpoint` threshold was chosen for other sites and costs
  accuracy here, so a site threshold can help.
- ``kermany_site_blur`` / ``source_test_blur``: the same films through a softer detector
  (Gaussian blur, sigma 3 px on the stored film, before the model's resize): a scanner
  shift that moves normal films' scores up, where calibration should help.

Sets of at most 200 films are split in halves; larger ones give a calibration part of
about 100 films (one fold of a patient-grouped K-fold) and score the rest.

    .venv/bin/python benchmarks/site_calibration.py --run runs/demo \\
        [--data ../shared/data/kermany_pneumonia] [--site ../shared/data/kermany_site] \\
        [--splits 60] [--resamples 100] [--jobs 2]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import platform
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results" / "site_calibration.json"
CACHE = Path.home() / ".cache" / "cxrkit" / "benchmarks" / "site_calibration"
METHODS = ("youden", "cost:1", "sensitivity:0.95")
PROBABILITIES = "temperature"
BLUR_SIGMA = 3.0


def _rows(labels_csv: Path, keep: set[str] | None = None) -> list[dict[str, str]]:
    with labels_csv.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r for r in rows if keep is None or r["path"] in keep]


def _blurred(paths: list[Path], folder: Path) -> list[Path]:
    """Copies of the films through a Gaussian blur (PNG, 8 bit), written once."""
    from PIL import Image, ImageFilter

    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, src in enumerate(paths):
        dst = folder / f"{i:05d}_{src.stem}.png"
        if not dst.is_file():
            with Image.open(src) as im:
                im.convert("L").filter(ImageFilter.GaussianBlur(BLUR_SIGMA)).save(dst)
        out.append(dst)
    return out


def network_probabilities_cached(model_file: Path, name: str, paths: list[Path]) -> np.ndarray:
    """The model's own probabilities of `paths`, cached by model digest and case."""
    from cxrkit.data.cache import file_sha256
    from cxrkit.models.model_file import load_model_file
    from cxrkit.site.films import film_loader, network_probabilities

    key = hashlib.sha256(
        (file_sha256(model_file) + name + "\n".join(map(str, paths))).encode()
    ).hexdigest()[:16]
    cached = CACHE / f"{name}-{key}.npy"
    if cached.is_file():
        return np.load(cached)
    model, card = load_model_file(model_file)
    probs, got = network_probabilities(model, card, film_loader(paths, card, 32, 0))
    if len(got) != len(paths):
        raise SystemExit(f"{name}: {len(paths) - len(got)} unreadable films")
    CACHE.mkdir(parents=True, exist_ok=True)
    np.save(cached, probs)
    return probs


def load_cases(run: Path, data: Path, site: Path) -> dict[str, dict[str, Any]]:
    """Labels, patients and network probabilities of every case."""
    from cxrkit.models.model_file import read_card

    model_file = run / "model.safetensors"
    names = list(read_card(model_file).class_names)
    split = _rows(run / "split.csv")
    test = {r["path"] for r in split if r["split"] == "test"}
    sets = {
        "kermany_site": (site, _rows(site / "labels.csv")),
        "source_test": (data, _rows(data / "labels.csv", test)),
    }
    cases = {}
    for name, (root, rows) in sets.items():
        paths = [root / r["path"] for r in rows]
        y = np.array([names.index(r["label"]) for r in rows], dtype=np.int64)
        groups = np.array([r["patient_id"] for r in rows])
        for suffix, films in (
            ("", paths),
            ("_blur", _blurred(paths, CACHE / f"films_{name}_blur{BLUR_SIGMA:g}")),
        ):
            probs = network_probabilities_cached(model_file, name + suffix, films)
            cases[name + suffix] = {"y": y, "groups": groups, "probs": probs}
    return cases


def calibration_splits(y: np.ndarray, groups: np.ndarray, n: int, seed: int = 1000):
    """`n` (calibration, unseen) index pairs: halves up to 200 films, else ~100-film parts."""
    from sklearn.model_selection import StratifiedGroupKFold

    k = 2 if len(y) <= 200 else max(2, round(len(y) / 100))
    for r in range(n):
        splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed + r)
        unseen, cal = next(splitter.split(np.zeros(len(y)), y, groups))
        yield cal, unseen


def one_split(args: tuple) -> dict[str, Any]:
    """Guarded and unguarded calibration on one calibration part, scored on the unseen part."""
    from cxrkit.site.calibrate import card_decisions, site_decisions
    from cxrkit.site.guard import guarded_fit
    from cxrkit.site.resample import decision_objective

    y, probs, groups, cal_idx, unseen, card, method, resamples = args
    resamples = min(resamples, 20) if method.startswith("sensitivity") else resamples
    fit = guarded_fit(
        y[cal_idx], probs[cal_idx], groups[cal_idx], card, method, PROBABILITIES, resamples
    )
    yu, pu = y[unseen], probs[unseen]
    _, old = card_decisions(pu, card)
    guarded = site_decisions(pu, card, fit.calibration, fit.threshold)[1] if fit.changed else old
    _, unguarded = site_decisions(pu, card, fit.fitted_calibration, fit.fitted_threshold)
    acc_old = float(np.mean(old == yu))
    return {
        "decision": fit.decision,
        "guarded": float(np.mean(guarded == yu)) - acc_old,
        "unguarded": float(np.mean(unguarded == yu)) - acc_old,
        "objective_guarded": decision_objective(yu, guarded, method)
        - decision_objective(yu, old, method),
        "objective_unguarded": decision_objective(yu, unguarded, method)
        - decision_objective(yu, old, method),
        "accuracy_before": acc_old,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean, sd and share hurt of the accuracy change (and of the method's own objective),
    guarded and unguarded."""
    out: dict[str, Any] = {"splits": len(rows)}
    for key in ("guarded", "unguarded"):
        v = np.array([r[key] for r in rows])
        objective = np.array([r[f"objective_{key}"] for r in rows])
        out[key] = {
            "mean_accuracy_change": round(float(v.mean()), 4),
            "sd": round(float(v.std(ddof=1)), 4),
            "share_hurt": round(float(np.mean(v < 0)), 3),
            "worst": round(float(v.min()), 4),
            "mean_objective_change": round(float(objective.mean()), 4),
            "share_objective_hurt": round(float(np.mean(objective < 0)), 3),
        }
    out["guard_wrote_threshold"] = round(
        float(np.mean([r["decision"] == "threshold" for r in rows])), 3
    )
    out["guard_wrote_map_only"] = round(
        float(np.mean([r["decision"] == "probabilities" for r in rows])), 3
    )
    out["mean_accuracy_before"] = round(float(np.mean([r["accuracy_before"] for r in rows])), 4)
    return out


def markdown(report: dict[str, Any]) -> str:
    """The results page's table: accuracy change on unseen films, guarded and unguarded."""
    lines = [
        "| case (films; model accuracy) | method | guarded: mean change (sd), share hurt "
        "| guard wrote | guarded: share where the method's objective fell "
        "| unguarded: mean change (sd), share hurt |",
        "|---|---|---|---|---|---|",
    ]
    for name, case in report["cases"].items():
        for method in METHODS:
            fig = case[method]
            g, u = fig["guarded"], fig["unguarded"]
            lines.append(
                f"| {name} ({case['films']}; {fig['mean_accuracy_before']:.3f}) | {method} | "
                f"{100 * g['mean_accuracy_change']:+.1f} ({100 * g['sd']:.1f}), "
                f"{100 * g['share_hurt']:.0f} % | {100 * fig['guard_wrote_threshold']:.0f} % | "
                f"{100 * g['share_objective_hurt']:.0f} % | "
                f"{100 * u['mean_accuracy_change']:+.1f} ({100 * u['sd']:.1f}), "
                f"{100 * u['share_hurt']:.0f} % |"
            )
    return "\n".join(lines)


def _cpu_name() -> str:
    """The CPU's model name (Linux), else the machine type."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, default=REPO / "runs" / "demo")
    ap.add_argument("--data", type=Path, default=SHARED / "kermany_pneumonia")
    ap.add_argument("--site", type=Path, default=SHARED / "kermany_site")
    ap.add_argument("--splits", type=int, default=60)
    ap.add_argument("--resamples", type=int, default=100)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--only", default="", help="cases whose name contains this")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--markdown", action="store_true", help="print the results table, run nothing")
    args = ap.parse_args()
    if args.markdown:
        print(markdown(json.loads(args.out.read_text())))
        return

    from cxrkit.models.model_file import read_card

    t0 = time.time()
    card = read_card(args.run / "model.safetensors")
    cases = load_cases(args.run, args.data, args.site)
    t_probs = time.time() - t0
    results: dict[str, Any] = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for name, case in cases.items():
            if args.only not in name:
                continue
            y, probs, groups = case["y"], case["probs"], case["groups"]
            results[name] = {"films": int(len(y)), "positives": int(y.sum())}
            for method in METHODS:
                jobs = [
                    (y, probs, groups, cal, unseen, card, method, args.resamples)
                    for cal, unseen in calibration_splits(y, groups, args.splits)
                ]
                rows = list(pool.map(one_split, jobs))
                results[name][method] = summarise(rows)
                fig = results[name][method]
                g, u = fig["guarded"], fig["unguarded"]
                print(
                    f"{name:18s} {method:16s} guarded {g['mean_accuracy_change']:+.4f} "
                    f"(sd {g['sd']:.4f}, hurt {g['share_hurt']:.2f}) | unguarded "
                    f"{u['mean_accuracy_change']:+.4f} (sd {u['sd']:.4f}, hurt "
                    f"{u['share_hurt']:.2f}) | wrote {fig['guard_wrote_threshold']:.2f} | "
                    f"objective hurt {g['share_objective_hurt']:.2f} vs "
                    f"{u['share_objective_hurt']:.2f}",
                    flush=True,
                )
    report = {
        "model": {"run": args.run.name, "thresholds": list(card.thresholds)},
        "probabilities": PROBABILITIES,
        "splits": args.splits,
        "resamples": args.resamples,
        "blur_sigma_px": BLUR_SIGMA,
        "cases": results,
        "seconds": {
            "network_probabilities": round(t_probs, 1),
            "total": round(time.time() - t0, 1),
        },
        "machine": {
            "cpus": os.cpu_count(),
            "cpu": _cpu_name(),
            "python": platform.python_version(),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out} in {report['seconds']['total']:.0f} s")


if __name__ == "__main__":
    main()
