"""Data-parallel scaling here: films/s of training and of CNN-code extraction, 1 vs 2 processes.

    python benchmarks/scaling.py                                  # NIH thumbnails, lite0 @ 128
    python benchmarks/scaling.py --films 256 --size 224 --out benchmarks/results/scaling.json
    python benchmarks/scaling.py --device cuda --configs 1x1 2x1  # on a machine with 2 GPUs

Each configuration runs under torchrun (`torch.distributed.run`, gloo on CPU, NCCL on
GPU) with the toolkit's own code paths: `extract_features` sharded over ranks and
gathered (features mode), and DDP training epochs of `make_film_batches` batches with
the global batch split over ranks (finetune mode). Films are decoded into a warm cache
first, so both measure the network, not PNG decoding. Timings start and stop at a
barrier; training is timed on the second epoch (the first builds DDP's buckets).
Configurations are PROCESSESxTHREADS (default 1x1 2x1 1x2: one process on one core, two
processes on one core each, one process on two cores); ratios are films/s over the first
configuration's. OpenMP waits are passive (`OMP_WAIT_POLICY=PASSIVE`): spinning threads
on busy shared cores would measure contention, not the engine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CXR_SHARED", REPO.parent / "shared"))


def worker(args: argparse.Namespace) -> None:
    """One rank: time code extraction and one training epoch; rank 0 writes the JSON."""
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from cxrkit.data.table import load_table
    from cxrkit.fit import distributed
    from cxrkit.fit.precision import resolve_precision
    from cxrkit.models import create_model
    from cxrkit.models.inference import prepare_for_device
    from cxrkit.train.config import TrainConfig
    from cxrkit.train.features import extract_features
    from cxrkit.train.finetune import make_film_batches
    from cxrkit.train.loop import _train_one_epoch
    from cxrkit.train.optim import build_optimizer

    ctx, device = distributed.setup(args.device)
    torch.manual_seed(0)
    table = load_table(args.data)
    table = table.subset(np.arange(min(args.films, len(table))))
    idx = np.arange(len(table))
    model = create_model(args.backbone, num_classes=len(table.class_names), random_init=True)
    model = prepare_for_device(model, device)
    cache = Path(args.cache)

    distributed.barrier()
    t0 = time.perf_counter()
    extract_features(
        model,
        table,
        idx,
        size=args.size,
        resize_mode="squash",
        cache_root=cache / f"features-{ctx.world_size}-{time.time_ns()}",
        key_parts={"bench": "scaling"},
        device=device,
        num_workers=0,
        batch_size=args.batch,
    )
    distributed.barrier()
    extract_s = time.perf_counter() - t0

    cfg = TrainConfig(
        backbone=args.backbone,
        mode="finetune",
        random_init=True,
        image_size=args.size,
        batch_size=args.batch,
        num_workers=0,
        augment=None,
        device=args.device,
    )
    batches = make_film_batches(table, idx, args.size, cfg, cache, None, shuffle=True)
    net = distributed.wrap_ddp(model, device)
    opt = build_optimizer(model.parameters(), cfg)
    scaler = torch.amp.GradScaler(device.type, enabled=False)
    amp = resolve_precision(args.precision, device)
    loss_fn = torch.nn.CrossEntropyLoss().to(device)
    _train_one_epoch(net, batches(1), loss_fn, opt, scaler, device, amp)  # warm-up
    distributed.barrier()
    t0 = time.perf_counter()
    _train_one_epoch(net, batches(2), loss_fn, opt, scaler, device, amp)
    distributed.barrier()
    train_s = time.perf_counter() - t0
    if ctx.is_main:
        row = {
            "processes": ctx.world_size,
            "threads_per_process": args.threads,
            "films": len(idx),
            "extract_seconds": round(extract_s, 3),
            "extract_films_per_s": round(len(idx) / extract_s, 2),
            "train_epoch_seconds": round(train_s, 3),
            "train_films_per_s": round(len(idx) / train_s, 2),
        }
        Path(args.out_json).write_text(json.dumps(row))
    distributed.shutdown()


def launch(nproc: int, worker_args: list[str]) -> None:
    """Run this file's worker on `nproc` processes under torchrun (in this process)."""
    from torch.distributed.run import get_args_parser, run

    targs = get_args_parser().parse_args(
        [f"--nproc-per-node={nproc}", "--standalone", str(Path(__file__).resolve())]
    )
    targs.training_script_args = ["--worker", *worker_args]  # never parsed by torchrun
    run(targs)


def warm_cache(data: Path, films: int, size: int, cache: Path) -> None:
    """Decode the films once so no configuration pays for PNG decoding."""
    import numpy as np

    from cxrkit.classifier.dataset import CXRDataset
    from cxrkit.data.table import load_table

    table = load_table(data)
    ds = CXRDataset(
        table, np.arange(min(films, len(table))), size=size, cache_dir=cache / "decoded"
    )
    for i in range(len(ds)):
        ds[i]


def run_config(config: str, args: argparse.Namespace, cache: Path, rep: int) -> dict:
    """One PROCESSESxTHREADS configuration under torchrun; its rank-0 timings."""
    procs, _, thr = config.partition("x")
    nproc, threads = int(procs), int(thr or 1)
    out_json = cache / f"result-{config}-{rep}.json"
    worker_args = [
        f"--out-json={out_json}",
        f"--threads={threads}",
        f"--cache={cache}",
        f"--data={args.data}",
        f"--films={args.films}",
        f"--size={args.size}",
        f"--batch={args.batch}",
        f"--backbone={args.backbone}",
        f"--device={args.device}",
        f"--precision={args.precision}",
    ]
    before = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = str(threads)
    t0 = time.perf_counter()
    try:
        launch(nproc, worker_args)
    finally:
        if before is None:
            os.environ.pop("OMP_NUM_THREADS")
        else:
            os.environ["OMP_NUM_THREADS"] = before
    row = json.loads(out_json.read_text())
    row["wall_seconds_with_startup"] = round(time.perf_counter() - t0, 1)
    return row


def main() -> int:
    """Time each configuration, print films/s and ratios; optionally save JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--out-json", default="", help=argparse.SUPPRESS)
    parser.add_argument("--threads", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--cache", default="", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, default=SHARED / "data" / "nih1000")
    parser.add_argument("--films", type=int, default=96)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=16, help="global batch")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="auto")
    parser.add_argument("--configs", nargs="+", default=["1x1", "2x1", "1x2"])
    parser.add_argument("--repeat", type=int, default=2, help="runs per configuration (best)")
    parser.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="cxr-scaling-") as tmp:
        cache = Path(tmp)
        warm_cache(args.data, args.films, args.size, cache)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        runs: dict[str, list[dict]] = {c: [] for c in args.configs}
        for rep in range(args.repeat):  # configurations interleaved: load drifts hit all
            for config in args.configs:
                runs[config].append(run_config(config, args, cache, rep))
    rows = []
    for config in args.configs:  # the best of the runs, each measure on its own
        row = dict(runs[config][0])
        for key in ("extract_films_per_s", "train_films_per_s"):
            row[key] = max(r[key] for r in runs[config])
        row["all_runs"] = runs[config]
        rows.append(row)
    base = rows[0]
    for row in rows:
        row["train_speedup"] = round(row["train_films_per_s"] / base["train_films_per_s"], 3)
        row["extract_speedup"] = round(row["extract_films_per_s"] / base["extract_films_per_s"], 3)
        print(
            f"{row['processes']} proc x {row['threads_per_process']} thr: "
            f"train {row['train_films_per_s']:.1f} films/s (x{row['train_speedup']:.2f}), "
            f"code extraction {row['extract_films_per_s']:.1f} films/s "
            f"(x{row['extract_speedup']:.2f}); wall {row['wall_seconds_with_startup']:.0f} s"
        )
    result = {
        "config": {k: str(v) for k, v in vars(args).items() if k not in ("worker", "out_json")},
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "loadavg_1_5_15_before": [round(v, 2) for v in load_before],
            "loadavg_1_5_15_after": [round(v, 2) for v in os.getloadavg()],
        },
        "rows": rows,
    }
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
