"""Streaming WebDataset shards: from a folder and over HTTP, 2 ranks x 2 workers, each film once."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from cxrkit.data.shards import (
    FilmDecoder,
    LabelTarget,
    ShardStream,
    expand_shards,
    films_in_shards,
    iter_samples,
    largest_shard,
    split_quota,
)
from cxrkit.errors import CxrkitError
from shard_helpers import serve_folder, write_shards

N_FILMS, PER_SHARD, RANKS, WORKERS = 48, 6, 2, 2


@pytest.fixture(scope="module")
def shard_dir(nih_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """8 shards of 6 real NIH thumbnails (PNG + JSON with the label)."""
    with open(nih_dir / "labels.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))[:N_FILMS]
    films = [
        (Path(r["path"]).stem, (nih_dir / r["path"]).read_bytes(), {"label": r["label"]})
        for r in rows
    ]
    folder = tmp_path_factory.mktemp("shards")
    write_shards(films, folder, PER_SHARD)
    return folder


def _decoder() -> FilmDecoder:
    return FilmDecoder(LabelTarget(["normal", "abnormal"]), size=32)


def _epoch_keys(urls: list[str], epoch: int, epoch_films: int | None) -> list[list[str]]:
    """Keys each rank saw in one epoch, read through a DataLoader with 2 worker processes."""
    seen = []
    for rank in range(RANKS):
        stream = ShardStream(
            urls, _decoder(), epoch_films=epoch_films, seed=3, rank=rank, world_size=RANKS
        )
        stream.set_epoch(epoch)
        loader = DataLoader(stream, batch_size=4, num_workers=WORKERS)
        keys = []
        for batch in loader:
            assert batch["image"].shape[1:] == (1, 32, 32)
            assert torch.isfinite(batch["image"]).all()
            assert set(batch["target"].tolist()) <= {0, 1}
            keys.extend(batch["key"])
        seen.append(keys)
    return seen


def _all_keys(folder: Path) -> list[str]:
    return sorted(s["__key__"] for url in expand_shards(str(folder)) for s in iter_samples(url))


@pytest.mark.parametrize("epoch_films", [N_FILMS, None])
def test_folder_two_ranks_two_workers_see_every_film_once_per_epoch(
    shard_dir: Path, epoch_films: int | None
) -> None:
    urls = expand_shards(f"shards://{shard_dir}/{{000000..000007}}.tar")
    assert len(urls) == N_FILMS // PER_SHARD
    everything = _all_keys(shard_dir)
    assert len(everything) == N_FILMS
    orders = []
    for epoch in (0, 1):
        per_rank = _epoch_keys(urls, epoch, epoch_films)
        assert [len(k) for k in per_rank] == [N_FILMS // RANKS] * RANKS  # equal steps per rank
        assert not set(per_rank[0]) & set(per_rank[1])
        assert sorted(per_rank[0] + per_rank[1]) == everything  # each film exactly once
        orders.append(per_rank[0])
    assert orders[0] != orders[1]  # the shard order is drawn again each epoch


def test_http_two_ranks_two_workers_see_every_film_once_per_epoch(shard_dir: Path) -> None:
    everything = _all_keys(shard_dir)
    with serve_folder(shard_dir) as base:
        urls = expand_shards(f"{base}/{{000000..000007}}.tar")
        assert urls[0].startswith("http://127.0.0.1:")
        per_rank = _epoch_keys(urls, 0, N_FILMS)
    assert Counter(per_rank[0] + per_rank[1]) == Counter(everything)


def test_epoch_by_film_count_keeps_ranks_in_step_on_uneven_shards(shard_dir: Path) -> None:
    """7 shards (42 films) for 4 readers: ranks still yield exactly epoch_films / 2 each."""
    urls = expand_shards(str(shard_dir))[:7]
    for epoch_films in (40, 60):
        per_rank = _epoch_keys(urls, 0, epoch_films)
        assert [len(k) for k in per_rank] == [epoch_films // RANKS] * RANKS


def test_unknown_labels_and_damaged_shards(shard_dir: Path, tmp_path: Path) -> None:
    sample = next(iter_samples(expand_shards(str(shard_dir))[0]))
    assert LabelTarget(["normal", "abnormal"])(sample) is not None
    assert LabelTarget(["pneumonia", "normal_not"])(sample) is None  # skipped, never guessed
    bad = tmp_path / "000000.tar"
    bad.write_bytes(b"\x00garbage" * 100)
    with pytest.raises(CxrkitError, match="000000.tar"):
        list(iter_samples(str(bad)))
    stream = ShardStream([str(bad)], _decoder(), rank=0, world_size=1)
    with pytest.raises(CxrkitError, match="readers"):  # 1 shard for 2 workers
        list(DataLoader(stream, batch_size=2, num_workers=2))


def test_expand_shards_and_quota() -> None:
    assert expand_shards("s3://b/x-{08..10}.tar") == [
        "s3://b/x-08.tar",
        "s3://b/x-09.tar",
        "s3://b/x-10.tar",
    ]
    assert len(expand_shards("d/{0..1}/{000..002}.tar")) == 6
    with pytest.raises(CxrkitError, match="backwards"):
        expand_shards("d/{5..1}.tar")
    assert split_quota(10, 4) == [3, 3, 2, 2]


def test_reads_the_shards_cxr_data_convert_writes(nih_dir: Path, tmp_path: Path) -> None:
    """The converter's shards (uneven, KEY.json = the labels.csv row), 2 ranks x 2 workers."""
    from cxrkit.datasets.convert import convert_dataset

    with open(nih_dir / "labels.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)[:40]
        fields = reader.fieldnames
    prepared = tmp_path / "prepared"
    prepared.mkdir()
    with open(prepared / "labels.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows({**r, "path": str(nih_dir / r["path"])} for r in rows)
    out = tmp_path / "shards"
    convert_dataset(prepared, out, size=32, fmt="webdataset", shard_size="8KB", progress=False)
    urls = expand_shards(str(out))
    assert len(urls) >= RANKS * WORKERS
    with open(out / "labels.csv", newline="") as fh:
        expected = {r["key"]: r["label"] for r in csv.DictReader(fh)}
    assert films_in_shards(urls) == 40
    assert films_in_shards(urls[:-1]) == 40 - _last_shard(out)  # only the shards named
    assert largest_shard(urls) == max(sum(1 for _ in iter_samples(u)) for u in urls)
    with serve_folder(out) as base:  # the default epoch of `cxr train --shards URL`
        assert films_in_shards(expand_shards(f"{base}/shard-{{000000..000001}}.tar")) > 0
    assert films_in_shards([str(tmp_path / "elsewhere" / "000000.tar")]) is None
    seen: dict[str, int] = {}
    for rank in range(RANKS):  # an exact pass: each film once, whatever the shard sizes
        stream = ShardStream(urls, _decoder(), epoch_films=None, rank=rank, world_size=RANKS)
        for batch in DataLoader(stream, batch_size=5, num_workers=WORKERS):
            for key, target in zip(batch["key"], batch["target"].tolist(), strict=True):
                assert ["normal", "abnormal"][target] == expected[key]
                seen[key] = seen.get(key, 0) + 1
    assert seen == dict.fromkeys(expected, 1)


def _last_shard(folder: Path) -> int:
    """Films in the converter's last shard, read from the tar itself."""
    last = sorted(folder.glob("*.tar"))[-1]
    return sum(1 for _ in iter_samples(str(last)))


def test_rank_and_world_size_default_to_the_joined_process_group(monkeypatch) -> None:
    """Outside a process group a stream is rank 0 of 1; inside one it takes the group's rank
    and size (what `cxrkit.fit.distributed.setup` joined), unless told otherwise."""
    from cxrkit.data import shards

    assert shards.process_group() == (0, 1)
    stream = ShardStream(["a.tar"], _decoder())
    assert (stream.rank, stream.world_size) == (0, 1)
    monkeypatch.setattr(shards.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(shards.dist, "get_rank", lambda: 1)
    monkeypatch.setattr(shards.dist, "get_world_size", lambda: 2)
    assert shards.process_group() == (1, 2)
    stream = ShardStream(["a.tar", "b.tar"], _decoder())
    assert (stream.rank, stream.world_size) == (1, 2)
    told = ShardStream(["a.tar"], _decoder(), rank=0, world_size=1)
    assert (told.rank, told.world_size) == (0, 1)
