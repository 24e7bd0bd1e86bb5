"""Streaming WebDataset shards: tar files of `KEY.png` + `KEY.json` (or `KEY.cls`) per film.

Shards are read sequentially, from a local folder or over HTTP(S) and S3-compatible URLs
(fsspec; `pip install cxrkit[shards]`, plus `s3fs` for `s3://`). Films are decoded in the
DataLoader's worker processes. Shards are split over ranks and workers without overlap:
each epoch the shard list is shuffled (seeded by the epoch, the same on every rank),
slot `rank * num_workers + worker` takes every `world_size * num_workers`-th shard, and
each slot reads its own shards in an order drawn again for it (seeded by epoch and slot).
Within a slot, films pass through a shuffle buffer (`shuffle_buffer`; `shard_films` and
`largest_shard` read the converter's labels.csv to size one that holds a whole shard).

An epoch is defined by a film count (`epoch_films`): every rank yields exactly
`epoch_films // world_size` films (split over its workers the same way on every rank, so
all ranks take the same number of steps). A slot that runs out of shards starts another
shuffled pass over its own; with shards of equal size and `epoch_films` the number of
films, every film is seen exactly once per epoch. `epoch_films=None` reads every film
once, with no padding (an exact pass, for evaluation).
"""

from __future__ import annotations

import io
import json
import logging
import random
import re
import tarfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from torch.utils.data import IterableDataset, get_worker_info

from cxrkit.errors import CxrkitError, ImageReadError

log = logging.getLogger(__name__)

IMAGE_EXTS = ("png", "jpg", "jpeg", "dcm")
_BRACES = re.compile(r"\{(\d+)\.\.(\d+)\}")
_REMOTE = re.compile(r"^[a-z][a-z0-9+.-]*://", re.IGNORECASE)

Sample = dict[str, Any]


def expand_shards(spec: str | Sequence[str]) -> list[str]:
    """Shard URLs from a spec: `DIR_OR_URL/{000000..000123}.tar` (zero-padded ranges, any
    number of them), a local folder (its `*.tar`, sorted), or a list of such specs.

    A `shards://` prefix is dropped (`shards://DIR/...` names local files, and
    `shards://https://...` a URL).
    """
    if not isinstance(spec, str):
        return [url for s in spec for url in expand_shards(s)]
    spec = spec.strip()
    if spec.startswith("shards://"):
        spec = spec[len("shards://") :]
    if not spec:
        raise CxrkitError("empty shard spec")
    match = _BRACES.search(spec)
    if match:
        lo, hi = match.group(1), match.group(2)
        if int(hi) < int(lo):
            raise CxrkitError(f"shard range {{{lo}..{hi}}} runs backwards")
        width = len(lo)
        head, tail = spec[: match.start()], spec[match.end() :]
        return [
            u
            for n in range(int(lo), int(hi) + 1)
            for u in expand_shards(head + str(n).zfill(width) + tail)
        ]
    if not _REMOTE.match(spec) and Path(spec).is_dir():
        found = sorted(str(p) for p in Path(spec).glob("*.tar"))
        if not found:
            raise CxrkitError(f"{spec}: no *.tar shards in this folder")
        return found
    return [spec]


def open_shard(url: str):
    """A binary stream of one shard: a local file, or fsspec for URLs (http, https, s3...)."""
    if not _REMOTE.match(url) or url.startswith("file://"):
        path = url[len("file://") :] if url.startswith("file://") else url
        try:
            return open(path, "rb")
        except OSError as exc:
            raise CxrkitError(f"{url}: cannot open shard ({exc.strerror or exc})") from exc
    try:
        import fsspec
    except ImportError as exc:  # pragma: no cover - fsspec comes with torch
        raise CxrkitError(
            "reading shards from URLs needs fsspec: pip install cxrkit[shards]"
        ) from exc
    kwargs = {"block_size": 0} if url.lower().startswith(("http://", "https://")) else {}
    try:
        return fsspec.open(url, "rb", **kwargs).open()
    except ImportError as exc:
        raise CxrkitError(
            f"{url}: this protocol needs an fsspec extra ({exc}); pip install cxrkit[shards]"
        ) from exc
    except (OSError, ValueError) as exc:
        raise CxrkitError(f"{url}: cannot open shard ({exc})") from exc


def shard_rows(urls: Sequence[str]) -> list[dict[str, str]] | None:
    """The rows of the labels.csv the converter writes beside its shards, for `urls`.

    Keeps the rows whose `shard` column names one of `urls` (every row when the column
    is absent); None when there is no readable labels.csv beside the first shard.
    """
    import csv

    if not urls:
        return None
    folder = urls[0].rsplit("/", 1)[0] if "/" in urls[0] else "."
    names = {u.rsplit("/", 1)[-1] for u in urls}
    try:
        with open_shard(f"{folder}/labels.csv") as fh:
            rows = csv.DictReader(io.TextIOWrapper(fh, encoding="utf-8", newline=""))
            return [row for row in rows if row.get("shard") is None or row["shard"] in names]
    except (CxrkitError, OSError, UnicodeDecodeError, csv.Error):
        return None


def films_in_shards(urls: Sequence[str]) -> int | None:
    """Films in `urls` per the labels.csv beside them (`shard_rows`); None without one."""
    rows = shard_rows(urls)
    return None if rows is None else len(rows)


def largest_shard(urls: Sequence[str]) -> int | None:
    """Films in the largest of `urls` per the labels.csv beside them (its `shard` column);
    None without one, or when it names no shard."""
    rows = shard_rows(urls)
    if not rows or rows[0].get("shard") is None:
        return None
    counts: dict[str, int] = {}
    for row in rows:
        counts[row["shard"]] = counts.get(row["shard"], 0) + 1
    return max(counts.values())


def set_class_mix(urls: Sequence[str], target: LabelTarget) -> np.ndarray | None:
    """The share of each class among the films of `urls` (labels.csv beside them, read as
    `target` reads a film's label; multi-label: each class's prevalence). None without a
    labels.csv or a usable label in it."""
    rows = shard_rows(urls)
    if rows is None:
        return None
    counts, films = np.zeros(len(target.class_names)), 0
    for row in rows:
        value = target.from_value(row.get(target.label_column))
        if value is None:
            continue
        films += 1
        if target.task == "multilabel":
            counts += value.numpy()
        else:
            counts[int(value)] += 1
    return counts / films if films else None


def split_key(name: str) -> tuple[str, str]:
    """WebDataset naming: `dir/KEY.ext.more` -> (`dir/KEY`, `ext.more`)."""
    folder, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    return (f"{folder}/{stem}" if folder else stem), (ext.lower() if dot else "")


def iter_samples(url: str) -> Iterator[Sample]:
    """The samples of one shard in order: {'__key__', '__url__', ext: bytes, ...}.

    Files of one sample are consecutive in the tar (the WebDataset rule); a damaged tar
    ends the shard with an error naming it.
    """
    with open_shard(url) as fh:
        try:
            with tarfile.open(fileobj=fh, mode="r|*") as tar:
                yield from _grouped(tar, url)
        except (tarfile.TarError, OSError, EOFError) as exc:
            raise CxrkitError(f"{url}: damaged or not a tar shard ({exc})") from exc


def _grouped(tar: tarfile.TarFile, url: str) -> Iterator[Sample]:
    current: Sample | None = None
    for member in tar:
        if not member.isfile():
            continue
        key, ext = split_key(member.name)
        if current is not None and current["__key__"] != key:
            yield current
            current = None
        if current is None:
            current = {"__key__": key, "__url__": url}
        data = tar.extractfile(member)
        current[ext] = data.read() if data is not None else b""
    if current is not None:
        yield current


def sample_image(sample: Sample) -> tuple[str, bytes] | None:
    """(extension, bytes) of the sample's film, or None when it has none."""
    for ext in IMAGE_EXTS:
        if ext in sample:
            return ext, sample[ext]
    return None


def sample_meta(sample: Sample) -> dict[str, Any]:
    """The sample's `.json` as a dict (empty when absent); a bad `.json` is an error."""
    raw = sample.get("json")
    if raw is None:
        return {}
    try:
        meta = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CxrkitError(f"{sample['__url__']}: {sample['__key__']}.json is not JSON") from exc
    return meta if isinstance(meta, dict) else {}


class LabelTarget:
    """Targets from a sample's `.json` (`label_column`) or `.cls` (a class index).

    Binary and multiclass targets are class indices; multilabel ones are multi-hot rows
    from a `|`-separated findings string (empty: no finding). An unknown label is None
    (the film is skipped), never a guess.
    """

    def __init__(
        self, class_names: Sequence[str], task: str = "binary", label_column: str = "label"
    ) -> None:
        self.class_names = list(class_names)
        self.index = {c: i for i, c in enumerate(self.class_names)}
        self.task, self.label_column = task, label_column

    def __call__(self, sample: Sample) -> torch.Tensor | None:
        """The target tensor of `sample`, or None when it has no usable label."""
        meta = sample_meta(sample)
        value = meta.get(self.label_column)
        if value is None and "cls" in sample:
            try:
                value = int(sample["cls"].decode().strip())
            except (UnicodeDecodeError, ValueError):
                return None
            if not 0 <= value < len(self.class_names) or self.task == "multilabel":
                return None
            return torch.tensor(value, dtype=torch.long)
        return self.from_value(value)

    def from_value(self, value: Any) -> torch.Tensor | None:
        """The target of a label value (a class name, or `|`-separated findings)."""
        if value is None:
            return None
        if self.task == "multilabel":
            names = [v.strip() for v in str(value).split("|") if v.strip()]
            if any(n not in self.index for n in names):
                return None
            row = np.zeros(len(self.class_names), dtype=np.float32)
            row[[self.index[n] for n in names]] = 1.0
            return torch.from_numpy(row)
        idx = self.index.get(str(value))
        return None if idx is None else torch.tensor(idx, dtype=torch.long)


class FilmDecoder:
    """sample -> {'image': (1, S, S) float32 in [0, 1], 'target', 'key'}; None if unusable.

    The same reader and resize as map-style datasets (`cxrkit.io`), then `transform`.
    """

    def __init__(
        self,
        target: Callable[[Sample], torch.Tensor | None],
        size: int,
        resize_mode: str = "squash",
        transform=None,
    ) -> None:
        from cxrkit.data.cache import check_resize

        check_resize(size, resize_mode)
        self.target, self.size, self.resize_mode, self.transform = (
            target,
            size,
            resize_mode,
            transform,
        )

    def __call__(self, sample: Sample) -> dict[str, Any] | None:
        """Decode one sample (in a DataLoader worker)."""
        from cxrkit.io import read_image_bytes, resize_film

        name = f"{sample['__url__']}:{sample['__key__']}"
        found = sample_image(sample)
        if found is None:
            log.warning("skipping %s: no image file in the sample", name)
            return None
        target = self.target(sample)
        if target is None:
            log.warning("skipping %s: no usable label", name)
            return None
        try:
            image, _meta = read_image_bytes(found[1], name)
        except ImageReadError as exc:
            log.warning("skipping unreadable film %s", exc)
            return None
        film = np.asarray(resize_film(image, self.size, mode=self.resize_mode), dtype=np.float32)
        tensor = torch.from_numpy(np.ascontiguousarray(film)).unsqueeze(0)
        if self.transform is not None:
            tensor = self.transform(tensor)
        return {"image": tensor, "target": target, "key": sample["__key__"]}


def split_quota(total: int, parts: int) -> list[int]:
    """`total` split into `parts` counts differing by at most one (larger ones first)."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def process_group() -> tuple[int, int]:
    """(rank, world size) of the process group this process joined, (0, 1) outside one.

    Read from `torch.distributed` itself (as webdataset does), not from
    `cxrkit.fit.distributed`, which joins the group: the data layer comes before training.
    """
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class ShardStream(IterableDataset):
    """Decoded films streamed from shards, split over ranks and DataLoader workers.

    `rank` / `world_size` default to this process's place in a distributed run. Call
    `set_epoch(e)` before each epoch (or pass `epoch`): shard order and the in-memory
    shuffle (`shuffle_buffer` films; 0 = none) are seeded by `seed` and the epoch, so a
    resumed epoch replays. `keep(key)` drops samples (e.g. films outside the train split)
    before they are decoded. See the module docstring for the epoch rule.
    """

    def __init__(
        self,
        urls: Sequence[str],
        decode: Callable[[Sample], dict[str, Any] | None],
        *,
        epoch_films: int | None = None,
        seed: int = 0,
        shuffle_buffer: int = 0,
        keep: Callable[[str], bool] | None = None,
        rank: int | None = None,
        world_size: int | None = None,
    ) -> None:
        super().__init__()
        if not urls:
            raise CxrkitError("no shards to read")
        group_rank, group_size = process_group()
        self.urls = list(urls)
        self.decode, self.keep = decode, keep
        self.epoch_films, self.seed, self.shuffle_buffer = epoch_films, seed, shuffle_buffer
        self.rank = group_rank if rank is None else rank
        self.world_size = group_size if world_size is None else world_size
        self.epoch = 0
        if epoch_films is not None and epoch_films < self.world_size:
            raise CxrkitError(
                f"epoch_films {epoch_films} is fewer than the {self.world_size} ranks"
            )

    def set_epoch(self, epoch: int) -> None:
        """Seed the next pass (shard order, shuffle buffer) by `epoch`."""
        self.epoch = int(epoch)

    def _slot(self) -> tuple[int, int, int]:
        """(this worker's slot, number of slots, workers per rank)."""
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        return self.rank * workers + worker, self.world_size * workers, workers

    def _shards_for(self, slot: int, slots: int, pass_no: int) -> list[str]:
        """This slot's shards: its share of the epoch's order (the same on every rank, so
        no two slots share a shard), in an order drawn for this slot and epoch."""
        order = list(self.urls)
        random.Random(f"{self.seed}/{self.epoch}/{pass_no}").shuffle(order)
        mine = order[slot::slots]
        random.Random(f"{self.seed}/{self.epoch}/{pass_no}/slot/{slot}").shuffle(mine)
        return mine

    def __iter__(self) -> Iterator[dict[str, Any]]:
        slot, slots, workers = self._slot()
        if len(self.urls) < slots:
            raise CxrkitError(
                f"{len(self.urls)} shards for {slots} readers ({self.world_size} ranks x "
                f"{workers} workers): write more, smaller shards or use fewer workers"
            )
        rng = random.Random(f"{self.seed}/{self.epoch}/buffer/{slot}")
        if self.epoch_films is None:
            yield from self._shuffled(self._decoded(self._shards_for(slot, slots, 0)), rng)
            return
        quota = split_quota(self.epoch_films // self.world_size, workers)[slot % workers]
        sent, pass_no = 0, 0
        while sent < quota:
            got_any = False
            stream = self._decoded(self._shards_for(slot, slots, pass_no))
            for item in self._shuffled(stream, rng):
                got_any = True
                yield item
                sent += 1
                if sent >= quota:
                    return
            if not got_any:
                raise CxrkitError(
                    f"shards {self._shards_for(slot, slots, pass_no)} hold no usable film"
                )
            pass_no += 1

    def _decoded(self, urls: list[str]) -> Iterator[dict[str, Any]]:
        for url in urls:
            for sample in iter_samples(url):
                if self.keep is not None and not self.keep(sample["__key__"]):
                    continue
                item = self.decode(sample)
                if item is not None:
                    yield item

    def _shuffled(
        self, items: Iterator[dict[str, Any]], rng: random.Random
    ) -> Iterator[dict[str, Any]]:
        if self.shuffle_buffer <= 1:
            yield from items
            return
        buf: list[dict[str, Any]] = []
        for item in items:
            if len(buf) < self.shuffle_buffer:
                buf.append(item)
                continue
            k = rng.randrange(len(buf))
            buf[k], item = item, buf[k]
            yield item
        rng.shuffle(buf)
        yield from buf
