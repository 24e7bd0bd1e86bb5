"""Films/s of `cxr predict` by file format, and what reduced-size JPEG decoding changes.

The 100 labelled `kermany_site` films are written as full-size PNG, JPEG (quality 90) and
16-bit DICOM (upscaled to --side px, as in screen_decode.py: no real full-size labelled set
is in shared/), then predicted by `Classifier.predict_iter` (DataLoader decode workers,
screening on) with the full decode and, for JPEG, with `jpeg_draft=True` (Pillow `draft`:
the DCT decodes at 1/2-1/8 scale). Reports films/s per format (one timed pass after a warm
pass), AUC / accuracy of each variant on the site labels, and the largest probability
change and label flips of draft vs full decode, also on the real JPEGs of shared/samples.

    .venv/bin/python benchmarks/predict_decode.py [--model runs/demo/model.safetensors]

Writes benchmarks/results/predict_decode.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
SITE = REPO.parent / "shared" / "data" / "kermany_site"
SAMPLES = REPO.parent / "shared" / "data" / "samples"
OUT = REPO / "benchmarks" / "results" / "predict_decode.json"
DRAFT = "jpeg full size, jpeg_draft"  # the JPEG files again, decoded with jpeg_draft=True


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=str(REPO / "runs" / "demo" / "model.safetensors"))
    ap.add_argument("--side", type=int, default=2048, help="side of the full-size films")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runtime", default="torch")
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).parent))
    from screen_decode import make_full_size
    from sklearn.metrics import roc_auc_score

    from cxrkit.classifier import Classifier
    from cxrkit.data.table import load_table

    clf = Classifier.load(args.model, args.runtime)
    positive = clf.class_names[-1]
    table = load_table(SITE)
    sources = [rec.path for rec in table.records]
    truth = np.array([positive in rec.labels for rec in table.records])
    report: dict = {"model": args.model, "runtime": args.runtime, "side": args.side}
    report["load_avg_at_start"] = os.getloadavg()
    rows, probs, labels = [], {}, {}
    with tempfile.TemporaryDirectory(prefix="cxr-pdecode-") as tmp:
        sets = make_full_size(sources, Path(tmp), args.side)
        variants = [(name, paths, False) for name, paths in sets.items()]
        variants.append((DRAFT, sets["jpeg full size"], True))
        for name, paths, draft in variants:
            run = lambda p=paths, d=draft: list(  # noqa: E731
                clf.predict_iter(p, num_workers=args.workers, jpeg_draft=d)
            )
            run()  # warm: worker start-up, lung/screening models, page cache
            t0 = time.perf_counter()
            got = run()
            seconds = time.perf_counter() - t0
            p = np.array([r["probabilities"][positive] for r in got])
            probs[name] = p
            labels[name] = np.array([r["label"] == positive for r in got])
            row = {
                "variant": name,
                "films": len(paths),
                "films_per_s": round(len(paths) / seconds, 1),
                "auc": round(float(roc_auc_score(truth, p)), 4),
                "accuracy": round(float(np.mean(labels[name] == truth)), 4),
                "load_avg": os.getloadavg()[0],
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    full, draft = probs["jpeg full size"], probs[DRAFT]
    report["rows"] = rows
    report["draft_vs_full_site"] = {
        "max_abs_dp": round(float(np.abs(full - draft).max()), 4),
        "mean_abs_dp": round(float(np.abs(full - draft).mean()), 5),
        "label_flips": int((labels["jpeg full size"] != labels[DRAFT]).sum()),
    }
    samples = sorted(SAMPLES.glob("*.jpg"))
    a = [r["probabilities"][positive] for r in clf.predict_iter(samples, num_workers=0)]
    b = [
        r["probabilities"][positive]
        for r in clf.predict_iter(samples, num_workers=0, jpeg_draft=True)
    ]
    report["draft_vs_full_real_jpegs"] = {
        s.name: {"full": round(x, 4), "draft": round(y, 4)}
        for s, x, y in zip(samples, a, b, strict=True)
    }
    print(json.dumps({k: report[k] for k in report if k.startswith("draft")}, indent=2))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return report


if __name__ == "__main__":
    main()
