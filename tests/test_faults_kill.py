"""SIGKILL at each stage that writes files; the rerun (or `--resume`) finishes and no half file
is ever taken for a whole one.

Each test starts the real CLI in a subprocess and kills it at an observable point: a number
of decode-cache entries on disk, or a marker that `fault_harness.py` (test side only) creates
when a chosen atomic write is half on disk. Training loses at most the epoch in flight.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrkit.fit.checkpoint import load_checkpoint
from cxrkit.io.atomic import glob_escape, temp_files
from cxrkit.models.model_file import load_model_file, read_card
from site_helpers import run_cxr, sha256, tiny_model_file

HARNESS = Path(__file__).with_name("fault_harness.py")
SIZE = 32


def _start(args: list[str | Path], log: Path, stall: str = "", nth: int = 1) -> subprocess.Popen:
    """`cxr ARGS` in a subprocess; with `stall`, the `nth` atomic write matching it stalls."""
    env = {**os.environ, "COLUMNS": "200", "CXR_TEST_STALL_GLOB": stall}
    env.update(CXR_TEST_STALL_NTH=str(nth), CXR_TEST_STALL_MARKER=str(log) + ".marker")
    with log.open("w") as fh:
        return subprocess.Popen(
            [sys.executable, str(HARNESS), *map(str, args)],
            stdout=subprocess.DEVNULL,
            stderr=fh,
            env=env,
        )


def _kill_when(proc: subprocess.Popen, log: Path, ready: Callable[[], bool]) -> None:
    """SIGKILL `proc` as soon as `ready()`; fail if it exits first or takes over 240 s."""
    deadline = time.monotonic() + 240
    try:
        while not ready():
            assert proc.poll() is None, f"exited {proc.returncode} first: {log.read_text()}"
            assert time.monotonic() < deadline, f"stage not reached: {log.read_text()}"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None and not ready():
            proc.kill()
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL


def _kill_at_stall(proc: subprocess.Popen, log: Path) -> Path:
    """SIGKILL `proc` while its stalled write is half on disk; returns the half-written temp."""
    marker = Path(str(log) + ".marker")
    _kill_when(proc, log, marker.exists)
    half = Path(marker.read_text())
    assert half.is_file() and half.stat().st_size > 0
    return half


def _train_args(data: Path, run: Path, cache: Path, mode: str, epochs: int) -> list[str | Path]:
    return [
        "train", "--data", data, "--out", run, "--backbone", "small_cnn", "--mode", mode,
        "--image-size", str(SIZE), "--max-images", "60", "--epochs", str(epochs),
        "--batch-size", "8", "--num-workers", "0", "--cache-dir", cache,
        "--set", "n_bootstrap=0", "--set", f"early_stopping_patience={epochs}", "--no-progress",
    ]  # fmt: skip


def _assert_decode_cache_whole(cache: Path) -> int:
    """Every decode-cache entry under its final name is a whole (SIZE, SIZE) uint16 film."""
    entries = list((cache / "decoded").glob("*/*.npy"))
    for entry in entries:
        film = np.load(entry, allow_pickle=False)
        assert film.shape == (SIZE, SIZE) and film.dtype == np.uint16, entry
    return len(entries)


def _assert_run_finished(run: Path, epochs: int, resumed_after: int, lost: int) -> None:
    """The resumed run ends with every planned epoch, the model file and no checkpoint temps."""
    log = (run / "train.log").read_text()
    assert f"after epoch {resumed_after}" in log
    history = [row["epoch"] for row in load_checkpoint(run / "checkpoints" / "last.pt")["history"]]
    assert history == list(range(1, epochs + 1))
    assert lost <= 1
    card = load_model_file(run / "model.safetensors")[1].to_dict()
    assert card["training"]["epochs_run"] == epochs
    assert (run / "metrics.json").is_file() and (run / "history.json").is_file()
    for name in ("last.pt", "best.pt"):
        assert temp_files(run / "checkpoints" / name) == []  # orphans of the kill cleared


@pytest.mark.slow
def test_kill_during_code_extraction_and_checkpoint_features_mode(
    nih_dir: Path, tmp_path: Path
) -> None:
    """Features mode: killed while writing CNN codes, then while writing epoch 3's last.pt."""
    run, cache, epochs = tmp_path / "run", tmp_path / "cache", 5
    args = _train_args(nih_dir, run, cache, "features", epochs)

    proc = _start(args, tmp_path / "a.log", stall=f"{glob_escape(str(cache))}/features/.*.tmp")
    half = _kill_at_stall(proc, tmp_path / "a.log")
    assert list((cache / "features").glob("*.npy")) == []  # the half array is only a temp
    assert _assert_decode_cache_whole(cache) > 0
    assert not (run / "checkpoints" / "last.pt").exists()
    with (run / "split.csv").open() as fh:  # written before extraction: whole
        assert len(list(csv.DictReader(fh))) == 60

    ckpt = run / "checkpoints" / "last.pt"
    proc = _start([*args, "--resume"], tmp_path / "b.log", stall="*/.last.pt.*.tmp", nth=3)
    _kill_at_stall(proc, tmp_path / "b.log")
    killed = load_checkpoint(ckpt)
    assert killed["epoch"] == 2  # epoch 3 was trained, its checkpoint only half written
    assert half.exists()  # the killed extraction's temp is ignored, not read
    codes = sorted((cache / "features").glob("*.npy"))
    assert len(codes) == 3  # train, val, test
    assert all(np.isfinite(np.load(c)).any() for c in codes)

    code, _, err = run_cxr(*args, "--resume")
    assert code == 0, err
    _assert_run_finished(run, epochs, resumed_after=2, lost=3 - killed["epoch"])
    history = load_checkpoint(ckpt)["history"]
    assert history[:2] == killed["history"]  # epochs 1-2 kept, not redone
    assert "CNN codes: cache hit" in (run / "train.log").read_text()


@pytest.mark.slow
def test_kill_during_decode_caching_and_checkpoint_finetune_mode(
    nih_dir: Path, tmp_path: Path
) -> None:
    """Finetune mode: killed while epoch 1 fills the decode cache, then in a checkpoint write."""
    run, cache, epochs = tmp_path / "run", tmp_path / "cache", 3
    args = _train_args(nih_dir, run, cache, "finetune", epochs)
    ckpt = run / "checkpoints" / "last.pt"

    proc = _start(args, tmp_path / "a.log")
    _kill_when(proc, tmp_path / "a.log", lambda: len(list(cache.glob("decoded/*/*.npy"))) >= 12)
    assert _assert_decode_cache_whole(cache) >= 12
    done = load_checkpoint(ckpt)["epoch"] if ckpt.exists() else 0  # epochs saved at the kill

    proc = _start([*args, "--resume"], tmp_path / "b.log", stall="*/.last.pt.*.tmp", nth=2)
    _kill_at_stall(proc, tmp_path / "b.log")
    killed = load_checkpoint(ckpt)
    assert killed["epoch"] == done + 1  # the next epoch's checkpoint was cut half-way
    _assert_decode_cache_whole(cache)

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # in this process OpenMP spin-waits (2 busy cores): 3x slower
    try:
        code, _, err = run_cxr(*args, "--resume")
    finally:
        torch.set_num_threads(threads)
    assert code == 0, err
    _assert_run_finished(run, epochs, resumed_after=done + 1, lost=done + 2 - killed["epoch"])


@pytest.fixture(scope="module")
def small_site(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """40 films of kermany_site (both classes), listed by absolute path in a new labels.csv."""
    src = shared_data / "kermany_site"
    if not src.is_dir():
        pytest.skip("kermany_site not in shared data")
    with (src / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    rows = (
        sorted(rows, key=lambda r: r["label"])[:20] + sorted(rows, key=lambda r: r["label"])[-20:]
    )
    site = tmp_path_factory.mktemp("site") / "site"
    site.mkdir()
    with (site / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows({**r, "path": str(src / r["path"])} for r in rows)
    return site


def test_kill_during_calibrate_keeps_the_previous_file(small_site: Path, tmp_path: Path) -> None:
    """`cxr calibrate` killed mid-write: the earlier calibrated file stays whole; a rerun works."""
    src = tiny_model_file(tmp_path / "model.safetensors")
    out = tmp_path / "cal.safetensors"
    # a target sensitivity is always applied, so the two runs write different maps
    args = ["calibrate", src, "--data", small_site, "--out", out, "--n-bootstrap", "20",
            "--folds", "2", "--resamples", "20", "--method", "sensitivity:0.9"]  # fmt: skip
    code, _, err = run_cxr(*args, "--probabilities", "none")
    assert code == 0, err
    before = sha256(out)

    proc = _start(args, tmp_path / "a.log", stall=f"*/.{out.name}.*.tmp")
    _kill_at_stall(proc, tmp_path / "a.log")
    assert sha256(out) == before
    assert read_card(out).calibration.method == "none"

    code, _, err = run_cxr(*args)
    assert code == 0, err
    card = load_model_file(out)[1].to_dict()
    assert card["probability_calibration"]["method"] == "temperature"


def test_kill_during_adapt_leaves_no_model_file(small_site: Path, tmp_path: Path) -> None:
    """`cxr adapt` killed mid-write leaves no model file (only a temp); a rerun writes it."""
    src = tiny_model_file(tmp_path / "model.safetensors")
    out = tmp_path / "adapted.safetensors"
    args = ["adapt", src, "--data", small_site, "--out", out, "--batch-size", "20", "--force"]

    proc = _start(args, tmp_path / "a.log", stall=f"*/.{out.name}.*.tmp")
    half = _kill_at_stall(proc, tmp_path / "a.log")
    assert not out.exists() and half.exists()

    code, _, err = run_cxr(*args)
    assert code == 0, err
    load_model_file(out)
    assert read_card(out).provenance.adaptation is not None


def test_kill_during_onnx_export_keeps_the_previous_file(tmp_path: Path) -> None:
    """`cxr export` killed mid-write: the earlier .onnx stays whole and valid; a rerun works."""
    onnx = pytest.importorskip("onnx")
    from serve_helpers import save_random_model

    old_model = save_random_model(tmp_path / "old.safetensors", seed=1)
    new_model = save_random_model(tmp_path / "new.safetensors", seed=2)
    out = tmp_path / "model.onnx"
    code, _, err = run_cxr("export", old_model, "--out", out, "--no-check")
    assert code == 0, err
    before = sha256(out)

    proc = _start(["export", new_model, "--out", out, "--no-check"], tmp_path / "a.log",
                  stall=f"*/.{out.name}.*.tmp")  # fmt: skip
    _kill_at_stall(proc, tmp_path / "a.log")
    assert sha256(out) == before
    onnx.checker.check_model(onnx.load(str(out)))

    code, _, err = run_cxr("export", new_model, "--out", out)
    assert code == 0, err
    assert sha256(out) != before
    onnx.checker.check_model(onnx.load(str(out)))
