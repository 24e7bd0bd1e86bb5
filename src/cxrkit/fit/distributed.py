"""Data-parallel training on PyTorch's own engine: torch.distributed, launched by torchrun.

A run is one process per device. `cxr train --nproc N [--nnodes M]` hands the command line
to torchrun (`torch.distributed.run`), which starts the processes and sets `RANK`,
`WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR` and `MASTER_PORT`; a run started by `torchrun`
or `srun` directly is joined the same way (SLURM's `SLURM_PROCID` / `SLURM_NTASKS` /
`SLURM_LOCALID` stand in for torchrun's variables when `MASTER_ADDR` is set).
Process groups use NCCL on GPUs and gloo on CPUs.

The rules every caller relies on:
- `--batch-size` is the global batch: each optimizer step sees `batch_size` films over all
  ranks, `batch_size / (world_size * accumulate)` per rank and micro-batch;
- training orders are drawn from the same seeded permutation on every rank and padded to a
  multiple of the world size, so every rank takes the same number of steps;
- evaluation orders are split without padding and their outputs gathered, so validation
  and test metrics are exact;
- rank 0 alone writes files (checkpoints, model, logs, report).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

from cxrkit.errors import CxrkitError

log = logging.getLogger("cxrkit.train")

#: Seconds a collective waits for a silent peer before it fails (`CXR_DIST_TIMEOUT`).
DEFAULT_TIMEOUT_S = 1800


@dataclass(frozen=True)
class DistContext:
    """Where this process stands in the run: its rank, the number of ranks, its local rank."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the one process that writes files and logs."""
        return self.rank == 0

    @property
    def active(self) -> bool:
        """True when there is more than one process (collectives are needed)."""
        return self.world_size > 1


_CTX = DistContext()


def current() -> DistContext:
    """This process's place in the run (rank 0 of 1 outside a distributed launch)."""
    return _CTX


def is_main() -> bool:
    """True on rank 0 (and in a single-process run): the process that writes files."""
    return _CTX.is_main


def launched_env(environ: dict[str, str] | None = None) -> tuple[int, int, int] | None:
    """(rank, world_size, local_rank) from torchrun's or SLURM's variables; None when absent."""
    env = os.environ if environ is None else environ
    try:
        if "RANK" in env and "WORLD_SIZE" in env:
            return int(env["RANK"]), int(env["WORLD_SIZE"]), int(env.get("LOCAL_RANK", 0))
        if "SLURM_PROCID" in env and "MASTER_ADDR" in env and int(env.get("SLURM_NTASKS", 1)) > 1:
            return (
                int(env["SLURM_PROCID"]),
                int(env["SLURM_NTASKS"]),
                int(env.get("SLURM_LOCALID", 0)),
            )
    except ValueError as exc:
        raise CxrkitError(f"distributed launch variables are not integers ({exc})") from exc
    return None


def setup(device_name: str) -> tuple[DistContext, torch.device]:
    """Join the launch described by the environment (if any) and pick this rank's device.

    Outside a launch this is `resolve_device(device_name)` on rank 0 of 1. Inside one,
    `auto`/`cuda` become `cuda:LOCAL_RANK` and the process group is initialised (NCCL on
    GPUs, gloo on CPUs) with a `CXR_DIST_TIMEOUT` (seconds) timeout, so a dead peer ends
    the run with an error instead of a hang. Ranks other than 0 log warnings only.
    """
    global _CTX
    from cxrkit.models.inference import resolve_device

    found = launched_env()
    if found is None or found[1] <= 1:
        _CTX = DistContext()
        return _CTX, resolve_device(device_name)
    rank, world, local_rank = found
    device = resolve_device(device_name)
    if device.type == "cuda":
        if device.index is None or device_name in ("auto", "cuda"):
            device = torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        os.environ.setdefault("MASTER_PORT", "29500")
        if "MASTER_ADDR" not in os.environ:
            raise CxrkitError("a distributed launch needs MASTER_ADDR (torchrun sets it)")
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            init_method="env://",
            rank=rank,
            world_size=world,
            timeout=timedelta(seconds=float(os.environ.get("CXR_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))),
        )
    _CTX = DistContext(rank, world, local_rank)
    if rank != 0:
        logging.getLogger("cxrkit").setLevel(logging.WARNING)
    log.info("distributed: %d processes, backend %s, device %s", world, dist.get_backend(), device)
    return _CTX, device


def shutdown() -> None:
    """Leave the process group (if one was joined); safe to call more than once."""
    global _CTX
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
    _CTX = DistContext()


def seed_rank(seed: int) -> None:
    """Give ranks other than 0 their own torch/numpy streams (dropout, augmentation).

    Rank 0 keeps `seed`'s stream, so a one-process run is rank 0 of any larger one.
    """
    if _CTX.rank:
        torch.manual_seed(seed + 7919 * _CTX.rank)
        np.random.seed((seed + 7919 * _CTX.rank) % 2**32)


def micro_batch(global_batch: int, accumulate: int = 1, world_size: int | None = None) -> int:
    """Films per rank per micro-batch: `global_batch / (world_size * accumulate)`, exactly."""
    world = _CTX.world_size if world_size is None else world_size
    parts = world * accumulate
    if global_batch % parts:
        raise CxrkitError(
            f"`batch_size` {global_batch} must be a multiple of processes x `accumulate` "
            f"({world} x {accumulate} = {parts}): it is the global batch, split evenly"
        )
    return global_batch // parts


def rank_share(order: Sequence[int] | np.ndarray | torch.Tensor, even: bool) -> np.ndarray:
    """This rank's part of a global `order`: every world_size-th item from its rank.

    With `even=True` (training) the order is first padded by wrapping around to a multiple
    of world_size, so all ranks take the same number of steps; global batch k then holds
    the same films as batch k of a one-process run. `even=False` (evaluation) pads nothing.
    """
    arr = np.asarray(order, dtype=np.int64)
    world, rank = _CTX.world_size, _CTX.rank
    if world == 1:
        return arr
    if even and len(arr) % world:
        pad = world - len(arr) % world
        arr = np.concatenate([arr, np.resize(arr, pad)])
    return arr[rank::world]


def wrap_ddp(module: nn.Module, device: torch.device) -> nn.Module:
    """`module` in DistributedDataParallel when several ranks train; else `module` itself."""
    if not _CTX.active or not any(p.requires_grad for p in module.parameters()):
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids, output_device=ids[0] if ids else None)


def no_sync(module: nn.Module, sync: bool):
    """A context that skips DDP's gradient all-reduce on accumulation micro-batches."""
    if sync or not hasattr(module, "no_sync"):
        return nullcontext()
    return module.no_sync()


def all_reduce_sum(values: Sequence[float]) -> list[float]:
    """Element-wise sum of `values` over ranks (float64; itself in a one-process run)."""
    if not _CTX.active:
        return [float(v) for v in values]
    t = torch.tensor([float(v) for v in values], dtype=torch.float64)
    if dist.get_backend() == "nccl":
        t = t.cuda()
    dist.all_reduce(t)
    return t.cpu().tolist()


def all_ranks(flag: bool) -> bool:
    """True only if `flag` is true on every rank (e.g. every rank found the cache file)."""
    return all_reduce_sum([0.0 if flag else 1.0])[0] == 0.0


def all_gather_objects(obj: Any) -> list[Any]:
    """`obj` from every rank, in rank order (pickled; for arrays of codes and predictions)."""
    if not _CTX.active:
        return [obj]
    out: list[Any] = [None] * _CTX.world_size
    dist.all_gather_object(out, obj)
    return out


def gather_rows(rows: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate every rank's (rows, index) pairs: each rank computed a disjoint share."""
    parts = all_gather_objects((rows, index))
    kept = [(r, i) for r, i in parts if len(i)]
    if not kept:
        return rows, index
    return np.concatenate([r for r, _ in kept]), np.concatenate([i for _, i in kept])


def barrier() -> None:
    """Wait for every rank (no-op in a one-process run)."""
    if _CTX.active:
        dist.barrier()


def torchrun_options(nproc: int, nnodes: int = 1, rdzv_endpoint: str | None = None) -> list[str]:
    """torchrun's own options for `nproc` processes on each of `nnodes` nodes.

    One node: `--standalone` (a free local port). Several: a c10d rendezvous at
    `rdzv_endpoint` (HOST:PORT of any one node, the same on all of them).
    """
    if nproc < 1 or nnodes < 1:
        raise CxrkitError("`nproc` and `nnodes` must be >= 1")
    opts = [f"--nproc-per-node={nproc}"]
    if nnodes == 1 and not rdzv_endpoint:
        return [*opts, "--standalone"]
    if not rdzv_endpoint:
        raise CxrkitError("`nnodes` > 1 needs `rdzv_endpoint` HOST:PORT (the same on every node)")
    return [*opts, f"--nnodes={nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={rdzv_endpoint}"]


def launch(
    argv: Sequence[str], nproc: int, nnodes: int = 1, rdzv_endpoint: str | None = None
) -> int:
    """Run `python -m cxrkit ARGV` on `nproc` processes per node under torchrun; its exit status.

    This process becomes torchrun's agent. It watches its workers: when one dies, it stops
    the others and returns non-zero, so a lost rank ends the run instead of hanging it;
    `--resume` then continues from the last completed epoch with any number of processes.
    """
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.run import get_args_parser, run

    os.environ.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    options = torchrun_options(nproc, nnodes, rdzv_endpoint)
    args = get_args_parser().parse_args([*options, "-m", "cxrkit"])
    args.training_script_args = list(argv)  # never parsed by torchrun: no option clashes
    log.info("torchrun %s: cxr %s", " ".join(options), " ".join(argv))
    try:
        run(args)
    except ChildFailedError as exc:
        failures = "; ".join(f"rank {r} exit {f.exitcode}" for r, f in exc.failures.items())
        log.error("distributed run failed (torchrun stopped the other ranks): %s", failures)
        return 1
    return 0
