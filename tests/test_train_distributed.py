"""Data-parallel training: 2 gloo processes match 1, a lost rank stops the run, --resume ends it.

Tolerance: with the same global batch, every epoch's train and validation loss of the
2-process features run is within 1e-4 of the 1-process run (same batches; only the
order of float sums differs), and the test metrics agree to 1e-3.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from torch import nn

from cxrkit.cli.app import main
from cxrkit.errors import CxrkitError
from cxrkit.fit import distributed
from cxrkit.fit.checkpoint import load_checkpoint
from cxrkit.fit.distributed import DistContext
from cxrkit.fit.precision import resolve_precision
from cxrkit.models.model_file import read_card
from cxrkit.train.loop import _train_one_epoch
from train_helpers import tiny_train_args

ENV = {**os.environ, "COLUMNS": "200", "OMP_NUM_THREADS": "1"}


def _args(data: Path, run: Path, cache: Path, mode: str, epochs: int) -> list[str]:
    return tiny_train_args(data, run, cache, epochs=epochs, mode=mode, extra=("--set", "dropout=0"))


@pytest.mark.slow
def test_two_gloo_processes_match_one_with_the_same_global_batch(
    nih_dir: Path, tmp_path: Path
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    # separate caches: the 2-process run extracts its CNN codes sharded over the ranks
    with mock.patch.object(sys, "argv", _args(nih_dir, one, tmp_path / "c1", "features", 3)):
        main()
    done = subprocess.run(
        [*_args(nih_dir, two, tmp_path / "c2", "features", 3), "--nproc", "2"],
        capture_output=True,
        text=True,
        timeout=300,
        env=ENV,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "distributed: 2 processes, backend gloo" in done.stderr
    h1 = json.loads((one / "history.json").read_text())
    h2 = json.loads((two / "history.json").read_text())
    assert len(h1) == len(h2) == 3
    for a, b in zip(h1, h2, strict=True):
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-4)
    m1 = json.loads((one / "metrics.json").read_text())
    m2 = json.loads((two / "metrics.json").read_text())
    assert read_card(one / "model.safetensors").provenance.training["processes"] == 1
    assert read_card(two / "model.safetensors").provenance.training["processes"] == 2
    assert m2["n"] == m1["n"] > 0
    assert m2["accuracy"] == pytest.approx(m1["accuracy"], abs=1e-3)
    assert m2["auc"] == pytest.approx(m1["auc"], abs=1e-3)
    # rank 0 alone writes: one model file, one log line per epoch, one codes cache per pass
    assert sorted(p.name for p in two.rglob("*.safetensors")) == ["model.safetensors"]
    assert (two / "train.log").read_text().count("epoch 3/3") == 1
    assert len(list((tmp_path / "c2" / "features").glob("*.npy"))) == 3


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        kids += [int(k) for k in text.split()]
    return kids


def _rank_pid(launcher: int, rank: int) -> int | None:
    for pid in _children(launcher):
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in env:
            return pid
    return None


@pytest.mark.slow
def test_killing_one_rank_stops_the_run_and_resume_finishes_it_on_one_process(
    nih_dir: Path, tmp_path: Path
) -> None:
    run, cache = tmp_path / "run", tmp_path / "cache"
    last = run / "checkpoints" / "last.pt"
    args = _args(nih_dir, run, cache, "finetune", 3)
    err = tmp_path / "stderr.txt"
    with err.open("wb") as err_fh:  # a file, not a pipe: a full pipe would stall the run
        proc = subprocess.Popen(
            [*args, "--nproc", "2"], stdout=subprocess.DEVNULL, stderr=err_fh, env=ENV
        )
    try:
        deadline = time.monotonic() + 240
        while not last.exists():  # epoch 1 is saved; epoch 2 starts at once
            assert proc.poll() is None, f"training ended early: {err.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "no last.pt after 240 s"
            time.sleep(0.01)
        victim = _rank_pid(proc.pid, 1)
        assert victim is not None, "rank 1 not found among the launcher's children"
        os.kill(victim, signal.SIGKILL)
        started = time.monotonic()
        code = proc.wait(timeout=120)  # no hang: torchrun stops rank 0 and fails the run
        stop_seconds = time.monotonic() - started
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=60)
    assert code != 0
    assert "distributed run failed" in err.read_text()
    assert stop_seconds < 120
    assert load_checkpoint(last)["epoch"] == 1
    assert not (run / "model.safetensors").exists()
    with mock.patch.object(
        sys,
        "argv",
        ["cxr", "train", "--data", str(nih_dir), "--out", str(run), "--resume", "--no-progress"],
    ):
        main()  # one process resumes what two started
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3]
    assert (run / "model.safetensors").is_file()
    assert "resumed from" in (run / "train.log").read_text()


@pytest.fixture
def rank1_of_2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend to be rank 1 of 2 (no process group: only the pure helpers are used)."""
    monkeypatch.setattr(distributed, "_CTX", DistContext(rank=1, world_size=2, local_rank=1))


def test_rank_share_pads_training_orders_and_splits_evaluation_exactly(rank1_of_2) -> None:
    order = np.array([5, 3, 9, 1, 7])
    assert distributed.rank_share(order, even=True).tolist() == [3, 1, 5]  # 5 padded with 5
    assert distributed.rank_share(order, even=False).tolist() == [3, 1]
    assert distributed.micro_batch(16, accumulate=2) == 4
    with pytest.raises(CxrkitError, match="multiple of processes x"):
        distributed.micro_batch(6, accumulate=2)


def test_accumulation_gives_the_gradient_of_the_whole_batch() -> None:
    torch.manual_seed(0)
    x, y = torch.randn(16, 5), torch.randint(0, 2, (16,))
    loss_fn = nn.CrossEntropyLoss()
    amp = resolve_precision("fp32", torch.device("cpu"))
    weights = []
    for micro, accumulate in ((8, 1), (4, 2), (2, 4)):
        torch.manual_seed(1)
        net = nn.Linear(5, 2)
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        batches = [
            {"image": x[s : s + micro], "target": y[s : s + micro]} for s in range(0, 16, micro)
        ]
        scaler = torch.amp.GradScaler("cpu", enabled=False)
        total, count = _train_one_epoch(
            net, batches, loss_fn, opt, scaler, torch.device("cpu"), amp, accumulate
        )
        assert count == 16 and np.isfinite(total)
        weights.append(net.weight.detach().clone())
    torch.testing.assert_close(weights[1], weights[0], atol=1e-6, rtol=0)
    torch.testing.assert_close(weights[2], weights[0], atol=1e-6, rtol=0)


def test_precision_choices_on_cpu() -> None:
    cpu = torch.device("cpu")
    assert resolve_precision("auto", cpu).dtype is None  # fp32 on CPU
    bf16 = resolve_precision("bf16", cpu)
    assert not bf16.scaler
    net = nn.Linear(4, 2)
    with bf16.autocast():
        out = net(torch.randn(3, 4))
    assert out.dtype is torch.bfloat16
    loss = out.float().logsumexp(1).mean()
    loss.backward()
    assert torch.isfinite(net.weight.grad).all() and net.weight.grad.dtype is torch.float32
    with pytest.raises(CxrkitError, match="fp16 needs a GPU"):
        resolve_precision("fp16", cpu)


def test_launch_options_and_environments() -> None:
    assert distributed.torchrun_options(2) == ["--nproc-per-node=2", "--standalone"]
    assert "--rdzv-endpoint=n1:29400" in distributed.torchrun_options(4, 2, "n1:29400")
    with pytest.raises(CxrkitError, match="rdzv_endpoint"):
        distributed.torchrun_options(4, nnodes=2)
    torchrun = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "1"}
    assert distributed.launched_env(torchrun) == (3, 8, 1)
    slurm = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "MASTER_ADDR": "n1"}
    assert distributed.launched_env(slurm) == (5, 8, 1)
    assert distributed.launched_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "8"}) is None
    assert distributed.launched_env({}) is None
