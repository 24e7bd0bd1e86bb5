"""`cxr train --resume` after a SIGKILL in the middle of epoch 2 finishes the planned epochs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from unittest import mock

import pytest

from cxrkit.cli.app import main
from cxrkit.fit.checkpoint import load_checkpoint
from train_helpers import tiny_train_args

EPOCHS = 3


def _train_args(data: Path, run: Path, cache: Path) -> list[str]:
    return tiny_train_args(data, run, cache, epochs=EPOCHS, extra=("--lr", "3e-5"))


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_finishes_the_planned_epochs(
    nih_dir: Path, tmp_path: Path
) -> None:
    run, cache = tmp_path / "run", tmp_path / "cache"
    last = run / "checkpoints" / "last.pt"
    env = {**os.environ, "COLUMNS": "200"}
    proc = subprocess.Popen(
        _train_args(nih_dir, run, cache),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 300
        while not last.exists():  # epoch 1 is saved; epoch 2 starts at once
            assert proc.poll() is None, f"training ended early: {proc.stderr.read()}"
            assert time.monotonic() < deadline, "no last.pt after 300 s"
            time.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_state = load_checkpoint(last)
    assert killed_state["epoch"] == 1, "the kill came after epoch 2 was saved, not during it"
    assert not (run / "model.safetensors").exists()
    assert not (run / "history.json").exists()
    fresh = subprocess.run(  # starting over would delete epoch 1: refused, state kept
        _train_args(nih_dir, run, cache), capture_output=True, text=True, timeout=120, env=env
    )
    assert fresh.returncode == 2 and "--resume" in fresh.stderr, fresh.stderr
    assert load_checkpoint(last)["epoch"] == 1

    done = subprocess.run(
        [*_train_args(nih_dir, run, cache), "--resume"],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stderr and "after epoch 1" in done.stderr
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == list(range(1, EPOCHS + 1))
    assert history[0] == pytest.approx(killed_state["history"][0])  # epoch 1 kept, not redone
    assert load_checkpoint(last)["epoch"] == EPOCHS
    assert (run / "model.safetensors").is_file()
    card = json.loads((run / "metrics.json").read_text())
    assert card["n"] > 0
    log = (run / "train.log").read_text()
    assert log.count("epoch 2/3") == 1 and log.count("epoch 3/3") == 1  # epoch 2 ran once


def test_resume_without_config_reuses_the_runs_config(nih_dir: Path, tmp_path: Path) -> None:
    """`cxr train --data D --out RUN --resume` needs no options: RUN/config.yaml has them."""
    run = tmp_path / "run"
    first = [
        "cxr",
        "train",
        "--data",
        str(nih_dir),
        "--out",
        str(run),
        "--backbone",
        "small_cnn",
        "--image-size",
        "32",
        "--max-images",
        "30",
        "--epochs",
        "2",
        "--num-workers",
        "0",
        "--cache-dir",
        str(tmp_path / "cache"),
        "--set",
        "n_bootstrap=0",
        "--no-progress",
    ]
    with mock.patch.object(sys, "argv", first):
        main()
    config_before = (run / "config.yaml").read_text()
    again = ["cxr", "train", "--data", str(nih_dir), "--out", str(run), "--resume", "--no-progress"]
    with mock.patch.object(sys, "argv", again):
        main()
    assert (run / "config.yaml").read_text() == config_before
    assert "resumed from" in (run / "train.log").read_text()
    assert [row["epoch"] for row in json.loads((run / "history.json").read_text())] == [1, 2]
