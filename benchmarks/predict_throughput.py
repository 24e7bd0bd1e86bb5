"""Films/s of `cxr predict` end to end (torch, onnx, openvino, onnx-int8) beside torchxrayvision.

The same DenseNet-121 (random init, 224 px; or a trained run's with `--model RUN`) on the
same kermany films, each configuration run once as its own process, start-up and model
loading included. A runtime counts towards "best cxr" only when it passes the accuracy
parity of benchmarks/runtime_parity.py for that run (`--parity`; int8 needs a run with
`model.int8.onnx`, so a trained model); the parity rows are copied beside the speeds.
torchxrayvision's pipeline is the one from its README (`skimage.io.imread`,
`xrv.datasets.normalize`, `XRayCenterCrop`, `XRayResizer(224)`,
`xrv.models.DenseNet(weights=None)`), batched the same way. Then the RSS of `cxr predict`
over a long folder (symlinks repeating the films).

    .venv/bin/python benchmarks/predict_throughput.py [--n 1000] [--rss-n 10000] \
        [--model runs/int8_densenet] [--runtimes torch onnx openvino onnx-int8]

torchxrayvision (and its scikit-image) is a benchmark-only dependency. Writes
benchmarks/results/predict_throughput.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "kermany_pneumonia"
PARITY = REPO / "benchmarks" / "results" / "runtime_parity.json"
#: pipeline name of each runtime in the table
RUNTIMES = {
    "torch": "cxr torch eager",
    "onnx": "cxr onnxruntime",
    "openvino": "cxr openvino",
    "openvino-bf16": "cxr openvino-bf16",
    "onnx-int8": "cxr onnx-int8",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--n", type=int, default=1000, help="films per throughput run")
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32])
    ap.add_argument("--rss-n", type=int, default=10000, help="films in the RSS run (0: skip)")
    ap.add_argument("--skip-xrv", action="store_true")
    ap.add_argument("--model", type=Path, default=None, help="a trained DenseNet-121 run folder")
    ap.add_argument("--runtimes", nargs="+", default=list(RUNTIMES), choices=list(RUNTIMES))
    ap.add_argument("--parity", type=Path, default=PARITY, help="runtime_parity.py's output")
    ap.add_argument("--only", choices=["all", "throughput", "rss"], default="all")
    ap.add_argument(
        "--out", default=str(REPO / "benchmarks" / "results" / "predict_throughput.json")
    )
    ap.add_argument(
        "--xrv-worker", nargs=3, metavar=("LIST", "BATCH", "OUT"), help=argparse.SUPPRESS
    )
    args = ap.parse_args()
    if args.xrv_worker:
        xrv_predict(Path(args.xrv_worker[0]), int(args.xrv_worker[1]), Path(args.xrv_worker[2]))
        return

    data = Path(args.data)
    films = film_paths(data, args.n)
    results: dict = {"machine": machine(), "n": len(films), "runs": [], "rss": None}
    parity = parity_of(args.parity, args.model)
    results["model"] = args.model.name if args.model else "random-init densenet121"
    results["parity"] = parity
    with tempfile.TemporaryDirectory(prefix="cxr-bench-") as tmp_name:
        tmp = Path(tmp_name)
        model, onnx = make_models(tmp) if args.model is None else run_models(args.model, tmp)
        files = {"torch": model, "onnx": onnx, "openvino": onnx, "openvino-bf16": onnx}
        if args.model is not None and (args.model / "model.int8.onnx").is_file():
            files["onnx-int8"] = args.model / "model.int8.onnx"
        folder = link_films(films, tmp / "films", len(films))
        listing = tmp / "films.txt"
        listing.write_text("\n".join(str(p) for p in sorted(folder.iterdir())))
        for bs in args.batch_sizes if args.only != "rss" else []:
            for runtime in args.runtimes:
                if runtime not in files:
                    print(f"{runtime}: skipped (needs --model RUN with model.int8.onnx)")
                    continue
                cmd = cxr_predict(files[runtime], folder, runtime, bs, tmp / "preds.csv")
                results["runs"].append(timed(RUNTIMES[runtime], bs, cmd, len(films)))
                results["runs"][-1]["counted"] = counted(runtime, parity, args.model)
                show(results["runs"][-1])
            if not args.skip_xrv:
                cmd = [
                    sys.executable,
                    __file__,
                    "--xrv-worker",
                    str(listing),
                    str(bs),
                    str(tmp / "xrv.csv"),
                ]
                results["runs"].append(timed("torchxrayvision", bs, cmd, len(films)))
                show(results["runs"][-1])
                # the same with the OpenMP setting `cxr predict` makes (not xrv's default)
                passive = {"OMP_WAIT_POLICY": "PASSIVE"}
                results["runs"].append(timed("xrv +omp-passive", bs, cmd, len(films), passive))
                show(results["runs"][-1])
        results["ratios"] = ratios(results["runs"])
        if args.rss_n and args.only != "throughput":
            long_folder = link_films(films, tmp / "long", args.rss_n)
            out_csv = tmp / "long.csv"
            cmd = cxr_predict(onnx, long_folder, "onnx", 32, out_csv)
            results["rss"] = rss_run(cmd, out_csv, args.rss_n)
            print(json.dumps(results["rss"], indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print_table(results)
    print(f"wrote {out}")


def parity_of(path: Path, run: Path | None) -> dict:
    """The parity rows and verdicts of `run` in runtime_parity.py's output ({} if none)."""
    if run is None or not path.is_file():
        return {}
    report = json.loads(path.read_text())
    return {
        "rows": [r for r in report.get("rows", []) if r["model"] == run.name],
        "verdicts": report.get("verdicts", {}).get(run.name, {}),
    }


def counted(runtime: str, parity: dict, run: Path | None) -> bool:
    """Whether a runtime may count as "best cxr": torch always; an fp32 graph runtime on a
    random model (nothing to lose); otherwise only with a passing parity verdict."""
    if runtime == "torch":
        return True
    verdict = parity.get("verdicts", {}).get(runtime)
    if verdict is not None:
        return bool(verdict["passes"])
    return run is None and runtime not in ("onnx-int8", "openvino-bf16")


def run_models(run: Path, tmp: Path) -> tuple[Path, Path]:
    """A trained run's model file and its fp32 ONNX export."""
    from cxrkit.models.model_file import find_model_file

    model = find_model_file(run)
    onnx = tmp / "model.onnx"
    subprocess.run([str(BIN / "cxr"), "export", str(model), "--out", str(onnx)], check=True)
    return model, onnx


def film_paths(data: Path, n: int) -> list[Path]:
    """The first `n` films of labels.csv (sorted by path)."""
    with open(data / "labels.csv", newline="") as f:
        rows = sorted(r["path"] for r in csv.DictReader(f))
    return [data / p for p in rows[:n]]


def link_films(films: list[Path], folder: Path, count: int) -> Path:
    """A folder of `count` symlinks cycling over `films`."""
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"{i:06d}.png").symlink_to(films[i % len(films)].resolve())
    return folder


def make_models(tmp: Path) -> tuple[Path, Path]:
    """A random-init DenseNet-121 cxrkit model file (card as the train runner writes) + ONNX."""
    from cxrkit.models import create_model, get_spec
    from cxrkit.models.model_file import save_model_file

    spec = get_spec("densenet121")
    net = create_model("densenet121", 2, random_init=True)
    card = {
        "architecture": "densenet121",
        "model_kwargs": {"head_hidden": None, "dropout": 0.0},
        "task": "binary",
        "class_names": ["normal", "pneumonia"],
        "label_column": "label",
        "preprocessing": {
            "size": 224,
            "resize_mode": "squash",
            "channels": "grayscale",
            "input_range": [0.0, 1.0],
            "mean": list(spec.mean),
            "std": list(spec.std),
            "normalization": "applied inside the network",
        },
        "thresholds": [0.5],
        "threshold_method": "youden",
        "training": {"mode": "benchmark", "weights": None},
        "metrics": {},
    }
    model = save_model_file(tmp / "densenet121.safetensors", net, card)
    onnx = tmp / "densenet121.onnx"
    subprocess.run([str(BIN / "cxr"), "export", str(model), "--out", str(onnx)], check=True)
    return model, onnx


def cxr_predict(model: Path, folder: Path, runtime: str, bs: int, out: Path) -> list[str]:
    """The `cxr predict` command line of one configuration."""
    return [
        str(BIN / "cxr"),
        "predict",
        str(model),
        str(folder),
        "--runtime",
        runtime,
        "--batch-size",
        str(bs),
        "--num-workers",
        "2",
        "--out",
        str(out),
    ]


def timed(name: str, bs: int, cmd: list[str], n: int, env: dict | None = None) -> dict:
    """Run one configuration end to end: films/s over its wall time, and its CPU seconds.

    CPU seconds (user + system of the process and its DataLoader workers) say what a run
    costs when other jobs share the cores; wall time is what a user waits.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **(env or {})})
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "pipeline": name,
        "batch": bs,
        "films": n,
        "seconds": round(wall, 1),
        "films_per_s": round(n / wall, 2),
        "cpu_seconds": round(cpu, 1),
        "films_per_cpu_s": round(n / cpu, 3),
        "load_avg": os.getloadavg()[0],
    }


def ratios(runs: list[dict]) -> dict:
    """Speed ratios asked for (ONNX vs eager, cxr vs torchxrayvision), by wall and CPU time."""
    out: dict = {}
    for key in ("films_per_s", "films_per_cpu_s"):
        by = {(r["pipeline"], r["batch"]): r[key] for r in runs}
        part: dict = {}
        for bs in sorted({r["batch"] for r in runs}):
            eager, onnx = by.get(("cxr torch eager", bs)), by.get(("cxr onnxruntime", bs))
            xrv = by.get(("torchxrayvision", bs))
            if eager and onnx:
                part[f"onnx_vs_eager_b{bs}"] = round(onnx / eager, 2)
            if xrv and onnx:
                part[f"cxr_onnx_vs_xrv_b{bs}"] = round(onnx / xrv, 2)
            if xrv and eager:
                part[f"cxr_eager_vs_xrv_b{bs}"] = round(eager / xrv, 2)
            xrv_passive = by.get(("xrv +omp-passive", bs))
            if xrv_passive and onnx:
                part[f"cxr_onnx_vs_xrv_passive_b{bs}"] = round(onnx / xrv_passive, 2)
            if xrv_passive and eager:
                part[f"cxr_eager_vs_xrv_passive_b{bs}"] = round(eager / xrv_passive, 2)
        xrv_best = max(
            (v for (p, _), v in by.items() if p.startswith("xrv") or p == "torchxrayvision"),
            default=None,
        )
        cxr_best = max(
            (r[key] for r in runs if r["pipeline"].startswith("cxr") and r.get("counted", True)),
            default=None,
        )
        if xrv_best and cxr_best:
            part["cxr_best_vs_xrv_best"] = round(cxr_best / xrv_best, 2)
        out["wall" if key == "films_per_s" else "cpu"] = part
    return out


def tree_memory(pid: int) -> tuple[int, int]:
    """(RSS of `pid`, PSS summed over `pid` and its children) in bytes, from /proc."""
    pids = [pid] + children(pid)
    rss = pss = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:") and p == pid:
                    rss = int(line.split()[1]) * 1024
                if line.startswith("Pss:"):
                    pss += int(line.split()[1]) * 1024
        except OSError:
            continue
    return rss, pss


def children(pid: int) -> list[int]:
    """All descendants of `pid`."""
    out: list[int] = []
    try:
        kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return out
    for k in map(int, kids):
        out += [k, *children(k)]
    return out


def rss_run(cmd: list[str], out_csv: Path, n: int) -> dict:
    """Run `cmd`, sampling memory every 0.5 s against films done (lines in the output CSV)."""
    samples: list[tuple[float, int, int, int]] = []
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)

    def sample() -> None:
        while proc.poll() is None:
            done = count_lines(out_csv)
            rss, pss = tree_memory(proc.pid)
            if rss:
                samples.append((time.perf_counter() - t0, done, rss, pss))
            time.sleep(0.5)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    proc.wait()
    watcher.join()
    wall = time.perf_counter() - t0
    if proc.returncode:
        raise SystemExit(f"{cmd} failed ({proc.returncode})")
    return {"seconds": round(wall, 1), "films_per_s": round(n / wall, 2), **rss_summary(samples, n)}


def rss_summary(samples: list, n: int) -> dict:
    """Start / peak / end memory while films stream: from 1 % done to the last row written
    (the process's own tear-down after that is left out)."""
    working = [s for s in samples if max(1, n // 100) <= s[1] < n] or samples
    mb = 1024 * 1024
    first, last = working[0], working[-1]
    at_1000 = min(samples, key=lambda s: abs(s[1] - 1000))
    return {
        "films": n,
        # the measure: RSS once film 1,000 is done vs at the last film written
        "rss_at_film_1000_mb": round(at_1000[2] / mb, 1),
        "rss_at_last_film_mb": round(last[2] / mb, 1),
        "main_rss_mb": {
            "start": round(first[2] / mb, 1),
            "peak": round(max(s[2] for s in working) / mb, 1),
            "end": round(last[2] / mb, 1),
        },
        "tree_pss_mb": {
            "start": round(first[3] / mb, 1),
            "peak": round(max(s[3] for s in working) / mb, 1),
            "end": round(last[3] / mb, 1),
        },
        "start_at_film": first[1],
        "end_at_film": last[1],
        "samples": [[round(t, 1), d, round(r / mb, 1), round(p / mb, 1)] for t, d, r, p in samples],
    }


def count_lines(path: Path) -> int:
    """Rows written so far (header excluded)."""
    try:
        with open(path, "rb") as f:
            return max(
                0, sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b"")) - 1
            )
    except OSError:
        return 0


def xrv_predict(listing: Path, bs: int, out: Path) -> None:
    """torchxrayvision's README pipeline over the listed files, `bs` films per forward."""
    import numpy as np
    import skimage.io
    import torch
    import torchvision
    import torchxrayvision as xrv

    model = xrv.models.DenseNet(weights=None).eval()  # DenseNet-121, 224 px, random init
    transform = torchvision.transforms.Compose(
        [xrv.datasets.XRayCenterCrop(), xrv.datasets.XRayResizer(224)]
    )
    paths = listing.read_text().split()
    with open(out, "w", newline="") as f, torch.no_grad():
        writer = csv.writer(f)
        for start in range(0, len(paths), bs):
            batch = []
            for p in paths[start : start + bs]:
                img = skimage.io.imread(p)
                img = xrv.datasets.normalize(img, 255)
                if img.ndim == 3:
                    img = img.mean(2)
                batch.append(transform(img[None, ...]))
            probs = model(torch.from_numpy(np.stack(batch)).float())
            for p, row in zip(paths[start : start + bs], probs.numpy(), strict=True):
                writer.writerow([p, *np.round(row, 6)])


def machine() -> dict:
    """What ran the benchmark, and how busy the machine was."""
    import onnxruntime
    import torch

    name, flags = cpu_info()
    return {
        "cpu": name,
        "flags": flags,
        "cores": len(os.sched_getaffinity(0)),
        "load_avg_at_start": os.getloadavg(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "openvino": _version("openvino"),
        "torch_threads": torch.get_num_threads(),
    }


def cpu_info() -> tuple[str, list[str]]:
    """(the CPU's model name, the SIMD flags that matter to these runtimes) from /proc/cpuinfo."""
    name, flags = platform.processor() or platform.machine(), []
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return name, flags
    fields = dict(line.split(":", 1) for line in lines if ":" in line)
    fields = {k.strip(): v.strip() for k, v in fields.items()}
    have = fields.get("flags", "").split()
    wanted = ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile")
    return fields.get("model name", name), [f for f in wanted if f in have]


def _version(package: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(package)
    except PackageNotFoundError:
        return None


def show(run: dict) -> None:
    print(
        f"{run['pipeline']:<18} batch {run['batch']:>3}: {run['films_per_s']:7.2f} films/s, "
        f"{run['films_per_cpu_s']:6.3f} films/CPU-s ({run['films']} films in "
        f"{run['seconds']} s, load {run['load_avg']:.1f})",
        flush=True,
    )


def print_table(results: dict) -> None:
    print(f"\n{'pipeline':<18} {'batch':>5} {'films/s':>9} {'films/CPU-s':>12} {'seconds':>8}")
    for r in results["runs"]:
        print(
            f"{r['pipeline']:<18} {r['batch']:>5} {r['films_per_s']:>9.2f} "
            f"{r['films_per_cpu_s']:>12.3f} {r['seconds']:>8.1f}"
        )
    for r in results.get("parity", {}).get("rows", []):
        print(
            f"parity {r['runtime']:<14} {r['set']:<14} AUC {r['auc']:.4f} acc {r['accuracy']:.4f}"
        )
    for kind, part in results.get("ratios", {}).items():
        for k, v in part.items():
            print(f"{kind} {k}: {v}x")
    print(f"load average at start: {results['machine']['load_avg_at_start']}")


if __name__ == "__main__":
    main()
