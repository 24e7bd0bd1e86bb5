"""`cxr train --shards URL --epoch-films N`: finetune on films streamed over HTTP."""

from __future__ import annotations

import csv
import json
import math
import sys
from pathlib import Path
from unittest import mock

import pytest

from cxrkit.cli.app import main
from cxrkit.errors import CxrkitError
from cxrkit.train.config import load_config
from shard_helpers import serve_folder, write_shards


def _shards_from(nih_dir: Path, folder: Path, first: int, n: int, per_shard: int) -> None:
    with open(nih_dir / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[first : first + n]
    films = [
        (Path(r["path"]).stem, (nih_dir / r["path"]).read_bytes(), {"label": r["label"]})
        for r in rows
    ]
    write_shards(films, folder, per_shard)


def test_finetune_streams_training_films_over_http(nih_dir: Path, tmp_path: Path) -> None:
    _shards_from(nih_dir, tmp_path / "shards", first=500, n=24, per_shard=6)
    run = tmp_path / "run"
    with serve_folder(tmp_path / "shards") as base:
        argv = [
            "cxr", "train", "--data", str(nih_dir), "--out", str(run),
            "--backbone", "small_cnn", "--mode", "finetune", "--image-size", "32",
            "--max-images", "30", "--epochs", "2", "--batch-size", "4",
            "--num-workers", "2", "--cache-dir", str(tmp_path / "cache"),
            "--shards", f"{base}/{{000000..000003}}.tar", "--epoch-films", "24",
            "--set", "n_bootstrap=0", "--no-progress",
        ]  # fmt: skip
        with mock.patch.object(sys, "argv", argv):
            main()
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2]
    assert all(math.isfinite(row["train_loss"]) for row in history)
    card = json.loads((run / "metrics.json").read_text())
    assert card["n"] > 0  # the test split of --data, scored map-style
    log = (run / "train.log").read_text()
    assert "epoch 2/2" in log


def test_stream_options_are_checked() -> None:
    with pytest.raises(CxrkitError, match="finetune"):
        load_config(None, {"shards": "d/{0..1}.tar", "mode": "features"})
    with pytest.raises(CxrkitError, match="epoch_films must be"):
        load_config(None, {"epoch_films": 0})
    from cxrkit.train.streaming import check_stream_config

    cfg = load_config(None, {"shards": "d/{0..1}.tar", "mode": "finetune"})
    with pytest.raises(CxrkitError, match="epoch_films"):
        check_stream_config(cfg)
