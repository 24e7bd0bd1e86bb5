"""`cxr predict` against its own parts: start-up per runtime, end to end vs model-only and
decode-only per film format, and `--part` scaling over 1 and 2 processes.

1. **Start-up**: `cxr predict MODEL ONE_FILM --runtime R` (fresh process, screening on,
   warm file cache and graph cache: one untimed run first), median of `--repeats` runs,
   beside `python -c 'import torch'` measured the same way.
2. **Pipeline**: for 224-px PNG films (`--n224`) and `--side`-px PNG, JPEG and 16-bit DICOM
   (`--n-large`, from `kermany_site`, as predict_decode.py), in one process per format:
   model-only (`Classifier.outputs` on films prepared beforehand, at the same batch size),
   decode-only (the same reader processes, `prepared_batches`, no network), then end to end
   (`Classifier.predict_iter`: read, prepare, screen, OOD score, network, rows). The pass
   is timed after one untimed pass (page cache, graph, screening net).
3. **Parts**: `cxr predict --part 0/1` over `--n-parts` films, then `--part 0/2` and
   `--part 1/2` as two processes at once; films/s over the wall time of all processes.

The model is a random-init DenseNet-121 (224 px) unless `--model` names a model file.

    .venv/bin/python benchmarks/predict_pipeline.py [--runtime onnx] [--model FILE]

Writes benchmarks/results/predict_pipeline.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "benchmarks" / "results" / "predict_pipeline.json"


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="a classifier model file")
    ap.add_argument("--runtime", default="onnx", help="runtime of the pipeline and part runs")
    ap.add_argument(
        "--startup-runtimes", nargs="*", default=["torch", "onnx", "onnx-int8", "openvino"]
    )
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--n224", type=int, default=512)
    ap.add_argument("--n-large", type=int, default=100)
    ap.add_argument("--side", type=int, default=2048)
    ap.add_argument("--n-parts", type=int, default=600)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--only", nargs="*", default=["startup", "pipeline", "parts"])
    ap.add_argument("--out", type=Path, default=OUT)
    args = ap.parse_args(argv)
    report: dict = json.loads(args.out.read_text()) if args.out.is_file() else {}
    report["machine"] = machine()
    with tempfile.TemporaryDirectory(prefix="cxr-pipeline-") as tmp_name:
        tmp = Path(tmp_name)
        model = args.model or random_densenet(tmp)
        report["model"] = "random-init densenet121" if args.model is None else str(args.model)
        films = kermany_films(max(args.n224, args.n_parts))
        if "startup" in args.only:
            report["startup"] = startup(model, films[0], args.startup_runtimes, args.repeats)
        if "pipeline" in args.only:
            report["pipeline"] = pipeline(model, films, tmp, args)
        if "parts" in args.only:
            report["parts"] = parts(model, films[: args.n_parts], tmp, args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print(f"wrote {args.out}")
    return report


def machine() -> dict:
    """The CPU (model name and the SIMD flags that matter to these runtimes) and the load."""
    sys.path.insert(0, str(Path(__file__).parent))
    from predict_throughput import cpu_info

    name, flags = cpu_info()
    return {
        "cpu": name,
        "flags": flags,
        "cores": len(os.sched_getaffinity(0)),
        "load_avg_at_start": [round(x, 2) for x in os.getloadavg()],
    }


def random_densenet(tmp: Path) -> Path:
    """A random-init DenseNet-121 cxrkit model file (224 px), as predict_throughput.py."""
    sys.path.insert(0, str(Path(__file__).parent))
    from predict_throughput import make_models

    return make_models(tmp)[0]


def kermany_films(n: int) -> list[Path]:
    """The first `n` films of kermany_pneumonia's labels.csv (sorted by path)."""
    import csv

    data = SHARED / "kermany_pneumonia"
    with open(data / "labels.csv", newline="") as f:
        rows = sorted(r["path"] for r in csv.DictReader(f))
    return [data / p for p in rows[:n]]


def startup(model: Path, film: Path, runtimes: list[str], repeats: int) -> dict:
    """Seconds from process start to the answer for one film, per runtime (median)."""
    out: dict = {"film": film.name, "repeats": repeats, "runtimes": {}}
    torch_cmd = [sys.executable, "-c", "import torch"]
    out["import_torch_s"] = median_seconds(torch_cmd, repeats)
    for runtime in runtimes:
        int8 = model.parent / "model.int8.onnx"
        if runtime == "onnx-int8" and not int8.is_file():  # start-up only: any weights do
            from cxrkit.export.quantize import quantize_model

            site = SHARED / "kermany_site"
            quantize_model(model, int8, site, n_films=16, check=site)
        cmd = [str(BIN / "cxr"), "predict", str(model), str(film), "--runtime", runtime]
        subprocess.run(cmd, check=True, capture_output=True)  # the graph cache, page cache
        probe = [sys.executable, "-c", _TORCH_PROBE, *cmd[1:]]
        imported = subprocess.run(probe, check=True, capture_output=True, text=True)
        out["runtimes"][runtime] = {
            "seconds": median_seconds(cmd, repeats),
            "imports_torch": imported.stdout.strip().splitlines()[-1] == "torch imported",
        }
        print(runtime, out["runtimes"][runtime], flush=True)
    print("import torch", out["import_torch_s"], flush=True)
    return out


# Runs `cxr ARGS...` in this interpreter, then says whether torch was imported.
_TORCH_PROBE = (
    "import sys, io, contextlib\n"
    "from cxrkit.cli.app import app\n"
    "sys.argv = ['cxr', *sys.argv[1:]]\n"
    "with contextlib.redirect_stdout(io.StringIO()):\n"
    "    try:\n"
    "        app(prog_name='cxr', standalone_mode=False)\n"
    "    except SystemExit:\n"
    "        pass\n"
    "print('torch imported' if 'torch' in sys.modules else 'no torch')\n"
)


def median_seconds(cmd: list[str], repeats: int) -> float:
    """Median wall seconds of `cmd` over `repeats` runs."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return round(statistics.median(times), 3)


def pipeline(model: Path, films: list[Path], tmp: Path, args: argparse.Namespace) -> dict:
    """Model-only, decode-only and end-to-end films/s per format (each in its own process)."""
    sets = film_sets(films[: args.n224], tmp, args.side, args.n_large)
    rows = []
    for name, folder in sets.items():
        cmd = [
            sys.executable,
            __file__,
            "--pipeline-worker",
            str(model),
            str(folder),
            args.runtime,
            str(args.batch_size),
            str(args.workers),
        ]
        got = subprocess.run(cmd, check=True, capture_output=True, text=True)
        row = {"format": name, **json.loads(got.stdout.strip().splitlines()[-1])}
        row["slower_part_films_per_s"] = min(row["model_only"], row["decode_only"])
        row["e2e_vs_model_only"] = round(row["end_to_end"] / row["model_only"], 3)
        row["e2e_vs_slower_part"] = round(row["end_to_end"] / row["slower_part_films_per_s"], 3)
        rows.append(row)
        print(json.dumps(row), flush=True)
    return {
        "runtime": args.runtime,
        "batch_size": args.batch_size,
        "workers": args.workers,
        "side": args.side,
        "rows": rows,
    }


def film_sets(films: list[Path], tmp: Path, side: int, n_large: int) -> dict[str, Path]:
    """Folders of 224-px PNG films and of `side`-px PNG, JPEG and 16-bit DICOM films."""
    from PIL import Image

    sys.path.insert(0, str(Path(__file__).parent))
    from screen_decode import make_full_size

    small = tmp / "png224"
    small.mkdir()
    for k, src in enumerate(films):
        img = Image.open(src).convert("L").resize((224, 224), Image.Resampling.BILINEAR)
        img.save(small / f"{k:05d}.png")
    site = sorted((SHARED / "kermany_site").rglob("*.png"))[:n_large]
    large = tmp / "large"
    large.mkdir()
    made = make_full_size(site, large, side)
    return {
        "224 px PNG": small,
        f"{side} px PNG": made["png full size"][0].parent,
        f"{side} px JPEG": made["jpeg full size"][0].parent,
        f"{side} px DICOM": made["dicom full size"][0].parent,
    }


def pipeline_worker(model: str, folder: str, runtime: str, batch: int, workers: int) -> None:
    """One format: print {model_only, decode_only, end_to_end} films/s as a JSON line."""
    from cxrkit.classifier import Classifier
    from cxrkit.classifier.films import FilmFiles
    from cxrkit.classifier.pipeline import prepared_batches
    from cxrkit.classifier.screen import screen_model

    paths = sorted(Path(folder).iterdir())
    clf = Classifier.load(model, runtime)
    screen_model(clf.screens_on_graph)
    reader = FilmFiles(paths, clf.prepare, screen=True, graph=clf.screens_on_graph)

    def decode_only() -> list[np.ndarray]:
        return [b["image"] for b in prepared_batches(reader, batch_size=batch, workers=workers)]

    def model_only(batches: list[np.ndarray]) -> None:
        for x in batches:
            clf.outputs(x)

    def end_to_end() -> None:
        for _ in clf.predict_iter(paths, batch_size=batch, num_workers=workers):
            pass

    batches = decode_only()  # warm: page cache
    model_only(batches)
    end_to_end()
    n = len(paths)
    result = {
        "films": n,
        "decode_only": rate(n, decode_only),
        "model_only": rate(n, lambda: model_only(batches)),
        "end_to_end": rate(n, end_to_end),
        "load_avg": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result))


def rate(n: int, fn) -> float:
    t0 = time.perf_counter()
    fn()
    return round(n / (time.perf_counter() - t0), 2)


def parts(model: Path, films: list[Path], tmp: Path, args: argparse.Namespace) -> dict:
    """films/s of one process over all films, and of two `--part` processes at once."""
    folder = tmp / "parts"
    folder.mkdir()
    for k, src in enumerate(films):
        (folder / f"{k:05d}.png").symlink_to(src.resolve())
    rows = []
    for n_parts in (1, 2):
        cmds = [
            [
                str(BIN / "cxr"),
                "predict",
                str(model),
                str(folder),
                "--runtime",
                args.runtime,
                "--part",
                f"{k}/{n_parts}",
                "--out",
                str(tmp / f"part{k}of{n_parts}.csv"),
            ]
            for k in range(n_parts)
        ]
        subprocess.run(cmds[0], check=True, capture_output=True)  # warm
        t0 = time.perf_counter()
        procs = [
            subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in cmds
        ]
        codes = [p.wait() for p in procs]
        wall = time.perf_counter() - t0
        if any(codes):
            raise SystemExit(f"a part failed: {codes}")
        rows.append(
            {
                "processes": n_parts,
                "films": len(films),
                "seconds": round(wall, 2),
                "films_per_s": round(len(films) / wall, 2),
                "load_avg": round(os.getloadavg()[0], 2),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return {"runtime": args.runtime, "rows": rows}


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--pipeline-worker":
        pipeline_worker(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), int(sys.argv[6]))
    else:
        main()
