"""`cxr train --shards URL --epoch-films N`: finetune on films streamed over HTTP."""

from __future__ import annotations

import csv
import json
import logging
import math
import random
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from cxrkit.cli.app import main
from cxrkit.data.shards import (
    FilmDecoder,
    LabelTarget,
    ShardStream,
    expand_shards,
    largest_shard,
    set_class_mix,
)
from cxrkit.errors import CxrkitError
from cxrkit.train.config import load_config
from cxrkit.train.streaming import (
    MIX_TOLERANCE,
    EpochMix,
    mix_departure,
    shuffle_buffer_for,
    stream_batches,
)
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


CLASSES = ["normal", "abnormal"]
N_NORMAL, N_ABNORMAL, PER_SHARD = 28, 20, 6


@pytest.fixture(scope="module")
def sorted_shards(nih_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 films sorted by class (28 normal, then 20 abnormal) in 8 shards of 6, written in
    that order (no converter shuffle): 4 all-normal shards, one mixed, 3 all-abnormal."""
    with open(nih_dir / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    chosen = [r for r in rows if r["label"] == "normal"][:N_NORMAL]
    chosen += [r for r in rows if r["label"] == "abnormal"][:N_ABNORMAL]
    films = [
        (Path(r["path"]).stem, (nih_dir / r["path"]).read_bytes(), {"label": r["label"]})
        for r in chosen
    ]
    folder = tmp_path_factory.mktemp("sorted-shards")
    write_shards(films, folder, PER_SHARD, labels_csv=True)
    return folder


def _share(targets: list[int]) -> np.ndarray:
    return np.bincount(targets, minlength=2) / len(targets)


def test_sorted_shards_give_every_epoch_the_sets_class_mix(sorted_shards: Path, caplog) -> None:
    """The trainer's stream (`cxr train --shards`, 2 workers) on class-sorted shards: each
    epoch's class mix within 5 points of the set's, and no mix warning."""
    urls = expand_shards(str(sorted_shards))
    target = LabelTarget(CLASSES)
    reference = set_class_mix(urls, target)
    assert reference is not None
    assert np.allclose(reference, [N_NORMAL / 48, N_ABNORMAL / 48])
    assert largest_shard(urls) == PER_SHARD
    cfg = load_config(
        None,
        {"shards": str(sorted_shards), "mode": "finetune", "batch_size": 4, "num_workers": 2},
    )  # no epoch_films: the labels.csv beside the shards gives 48
    batches = stream_batches(cfg, 32, CLASSES, "binary", None)
    first_batches = []
    with caplog.at_level(logging.WARNING, logger="cxrkit.train"):
        for epoch in range(1, 5):
            epoch_mix = batches(epoch)
            targets: list[int] = []
            for batch in epoch_mix:
                targets.extend(batch["target"].tolist())
            assert len(targets) == 48
            assert epoch_mix.mix is not None
            assert np.allclose(epoch_mix.mix, _share(targets))
            assert mix_departure(_share(targets), reference) <= 5.0, (epoch, _share(targets))
            first_batches.append(targets[:8])
    assert not [r for r in caplog.records if "class mix" in r.getMessage()]
    assert len({tuple(t) for t in first_batches}) > 1  # each epoch streams a new order


def test_sorted_shards_two_ranks_two_workers_keep_the_mix(sorted_shards: Path) -> None:
    """2 ranks x 2 workers with a shard-sized buffer: each epoch's films (all ranks) keep
    the set's class mix within 5 points, and every batch window is drawn from its reader's
    shards in a new order each epoch."""
    urls = expand_shards(str(sorted_shards))
    reference = set_class_mix(urls, LabelTarget(CLASSES))
    assert reference is not None
    decode = FilmDecoder(LabelTarget(CLASSES), size=32)
    buffer = shuffle_buffer_for(urls, 32)
    orders = []
    for epoch in range(4):
        targets, keys = [], []
        for rank in range(2):
            stream = ShardStream(
                urls, decode, epoch_films=48, seed=5, shuffle_buffer=buffer,
                rank=rank, world_size=2,
            )  # fmt: skip
            stream.set_epoch(epoch)
            for batch in DataLoader(stream, batch_size=4, num_workers=2):
                targets.extend(batch["target"].tolist())
                keys.extend(batch["key"])
        assert len(targets) == 48 and len(set(keys)) == 48
        assert mix_departure(_share(targets), reference) <= 5.0, (epoch, _share(targets))
        orders.append(keys)
    assert len({tuple(k) for k in orders}) == len(orders)


def test_shard_order_is_drawn_per_epoch_and_per_reader() -> None:
    """Each slot (rank x worker) takes a disjoint share of the epoch's order and reads it in
    an order of its own, drawn again each epoch."""
    urls = [f"s/{n:03d}.tar" for n in range(40)]
    stream = ShardStream(urls, FilmDecoder(LabelTarget(CLASSES), 32), rank=0, world_size=1)
    reordered, per_epoch = False, []
    for epoch in range(3):
        stream.set_epoch(epoch)
        shares = [stream._shards_for(slot, 4, 0) for slot in range(4)]
        assert sorted(u for share in shares for u in share) == urls  # disjoint, complete
        per_epoch.append(shares[0])
        order = list(urls)
        random.Random(f"0/{epoch}/0").shuffle(order)
        reordered |= any(shares[k] != order[k::4] for k in range(4))
    assert reordered  # not just a slice of the common order
    assert len({tuple(s) for s in per_epoch}) == 3


def test_shuffle_buffer_holds_a_shard(tmp_path: Path) -> None:
    films = [(f"k{i:03d}", b"x", {"label": "normal"}) for i in range(900)]
    write_shards(films, tmp_path, per_shard=400, labels_csv=True)
    urls = expand_shards(str(tmp_path))
    assert largest_shard(urls) == 400
    assert shuffle_buffer_for(urls, 224) == 400  # the whole largest shard
    assert shuffle_buffer_for(urls, 8192) < 400  # capped by memory at huge sizes
    assert shuffle_buffer_for(["nowhere/000.tar"], 224) == 256  # no labels.csv: the floor


def _batches(labels: list[int], task: str = "binary") -> list[dict]:
    if task == "multilabel":
        rows = torch.tensor([[1.0, float(v)] for v in labels])
        return [{"target": rows[i : i + 4]} for i in range(0, len(labels), 4)]
    t = torch.tensor(labels)
    return [{"target": t[i : i + 4]} for i in range(0, len(labels), 4)]


def test_an_epoch_off_the_sets_mix_is_warned(caplog) -> None:
    reference = np.array([0.6, 0.4])
    skewed = [0] * 14 + [1] * 6  # 70 / 30: 10 points off
    close = [0] * 12 + [1] * 8  # 60 / 40
    with caplog.at_level(logging.WARNING, logger="cxrkit.train"):
        seen = list(EpochMix(_batches(close), 1, CLASSES, "binary", reference))
        assert len(seen) == 5 and not caplog.records
        mix = EpochMix(_batches(skewed), 2, CLASSES, "binary", reference)
        list(mix)
    assert mix.mix is not None and np.allclose(mix.mix, [0.7, 0.3])
    (record,) = caplog.records
    message = record.getMessage()
    assert record.levelno == logging.WARNING
    assert "epoch 2" in message and "10.0 points" in message and "abnormal 30.0 %" in message
    assert "--" not in message  # a library message names no CLI flag
    assert MIX_TOLERANCE == 5.0
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="cxrkit.train"):
        list(EpochMix(_batches(skewed), 3, CLASSES, "binary", None))  # no labels.csv
        multi = EpochMix(_batches(skewed, "multilabel"), 4, CLASSES, "multilabel", np.ones(2))
        list(multi)
    assert multi.mix is not None and np.allclose(multi.mix, [1.0, 0.3])
    assert [r.getMessage().split(":")[0] for r in caplog.records] == ["epoch 4"]
