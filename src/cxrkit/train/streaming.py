"""Finetune mode on streamed shards: the training films come from `cfg.shards`.

`cxr train --data SET --shards SPEC --epoch-films N` trains on the films of the WebDataset
shards `SPEC` (`cxrkit.data.shards`: folder, HTTP(S) or S3; labels from each film's
`.json` `label_column`, or `.cls`), N films per epoch over all ranks (default: the films
the converter's labels.csv beside the shards lists for them). `SET` stays a
map-style labelled set: its validation and test splits are scored exactly as without
shards, and its train split only serves the class weights and the feature reference.
Keep the shards' films apart from SET's patients (convert the splits separately).

Each epoch the shard order is drawn again (per epoch, then per reader: rank x worker) and
each reader mixes its films in a shuffle buffer that holds a whole shard (sized from the
labels.csv beside the shards). The films of each epoch are counted by class: an epoch
whose class mix departs from the set's (labels.csv) by more than `MIX_TOLERANCE` points
is logged as a warning (shards sorted by class, or an epoch too short to mix them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from cxrkit.classifier.dataset import collate_skip_bad
from cxrkit.data.shards import (
    FilmDecoder,
    LabelTarget,
    ShardStream,
    expand_shards,
    films_in_shards,
    largest_shard,
    set_class_mix,
)
from cxrkit.errors import CxrkitError
from cxrkit.fit import distributed
from cxrkit.train.config import TrainConfig

log = logging.getLogger("cxrkit.train")

#: Films held in each reader's shuffle buffer at least (more to hold a whole shard).
SHUFFLE_BUFFER = 256
#: Decoded films a reader's shuffle buffer may hold, in bytes (caps a shard-sized buffer).
MAX_BUFFER_BYTES = 1 << 30
#: Points (percent of films) an epoch's class share may depart from the set's unwarned.
MIX_TOLERANCE = 5.0


def shuffle_buffer_for(urls: Sequence[str], size: int) -> int:
    """Films per reader's shuffle buffer: the largest shard's (labels.csv beside the
    shards), at least `SHUFFLE_BUFFER`, at most `MAX_BUFFER_BYTES` of `size`-px films."""
    films = max(largest_shard(urls) or 0, SHUFFLE_BUFFER)
    return max(1, min(films, MAX_BUFFER_BYTES // (4 * size * size)))


def mix_departure(mix: np.ndarray, reference: np.ndarray) -> float:
    """The largest departure of a class share from the reference's, in points."""
    return float(np.abs(np.asarray(mix) - np.asarray(reference)).max() * 100.0)


def format_mix(class_names: Sequence[str], mix: np.ndarray) -> str:
    """`name 12.3 %, ...` for a log line."""
    return ", ".join(f"{n} {100 * m:.1f} %" for n, m in zip(class_names, mix, strict=True))


class EpochMix:
    """One epoch's batches, counted by class as they pass; after the last batch, a
    warning when the epoch's class mix (over all ranks) departs from `reference` by more
    than `tolerance` points. `mix` holds the epoch's shares once it has been read."""

    def __init__(
        self,
        batches: Any,
        epoch: int,
        class_names: Sequence[str],
        task: str,
        reference: np.ndarray | None,
        tolerance: float = MIX_TOLERANCE,
    ) -> None:
        self.batches, self.epoch = batches, epoch
        self.class_names, self.task = list(class_names), task
        self.reference, self.tolerance = reference, tolerance
        self.mix: np.ndarray | None = None

    def __iter__(self) -> Iterator[Any]:
        """The batches, unchanged; the check runs once they are all read (a run that
        stops mid-epoch skips it: every rank stops at the same step)."""
        n = len(self.class_names)
        counts, films = np.zeros(n), 0
        for batch in self.batches:
            if batch is not None:
                target = batch["target"]
                if self.task == "multilabel":
                    counts += target.float().sum(0).cpu().numpy()
                else:
                    counts += np.bincount(target.cpu().numpy().ravel(), minlength=n)[:n]
                films += len(target)
            yield batch
        *counts_all, films_all = distributed.all_reduce_sum([*counts, films])
        if films_all:
            self.mix = np.asarray(counts_all) / films_all
            self._check(self.mix)

    def _check(self, mix: np.ndarray) -> None:
        if self.reference is None:
            return
        gap = mix_departure(mix, self.reference)
        log.info(
            "epoch %d: streamed class mix %s, the set's %s: %.1f points apart",
            self.epoch,
            format_mix(self.class_names, mix),
            format_mix(self.class_names, self.reference),
            gap,
        )
        if gap > self.tolerance:
            log.warning(
                "epoch %d: the streamed class mix (%s) departs from the set's (%s) by %.1f "
                "points (more than %g): shards sorted by class, or too few films per epoch "
                "to mix them (epoch_films)",
                self.epoch,
                format_mix(self.class_names, mix),
                format_mix(self.class_names, self.reference),
                gap,
                self.tolerance,
            )


def check_stream_config(cfg: TrainConfig) -> tuple[list[str], int]:
    """The shard URLs of `cfg.shards` and the films per epoch, after refusing what a
    stream cannot do. Without `epoch_films`, an epoch is the films the converter's
    labels.csv beside the shards lists for them."""
    if cfg.mode != "finetune":
        raise CxrkitError("shards stream training films in mode 'finetune' only")
    urls = expand_shards(cfg.shards)
    epoch_films = cfg.epoch_films or films_in_shards(urls)
    if not epoch_films:
        raise CxrkitError(
            "`shards` need `epoch_films` (films per epoch): no labels.csv beside them to count"
        )
    if cfg.crop is not None or cfg.fix_polarity:
        raise CxrkitError("crop and fix_polarity are not applied to streamed films yet")
    if cfg.balance == "sampler":
        raise CxrkitError("balance 'sampler' needs a map-style set; use 'loss' or 'none'")
    return urls, epoch_films


def stream_batches(
    cfg: TrainConfig, size: int, class_names: Sequence[str], task: str, augment
) -> Callable[[int], EpochMix]:
    """A function epoch -> the batches (a DataLoader, counted by `EpochMix`) of this
    rank's share of the shards.

    Micro-batches of `batch_size / (world_size * accumulate)`; every rank yields
    `epoch_films // world_size` films, so the ranks take the same number of steps.
    """
    urls, epoch_films = check_stream_config(cfg)
    target = LabelTarget(class_names, task, cfg.label_column)
    buffer = shuffle_buffer_for(urls, size)
    reference = set_class_mix(urls, target)
    log.info(
        "streaming %d films per epoch from %d shards (shuffle buffer %d films per reader)",
        epoch_films,
        len(urls),
        buffer,
    )
    if reference is None:
        log.info("no labels.csv beside the shards: the epochs' class mix is not checked")
    decode = FilmDecoder(target, size, cfg.resize_mode, augment)
    micro = distributed.micro_batch(cfg.batch_size, cfg.accumulate)

    def batches(epoch: int) -> EpochMix:
        stream = ShardStream(
            urls, decode, epoch_films=epoch_films, seed=cfg.seed, shuffle_buffer=buffer
        )
        stream.set_epoch(epoch)
        loader = DataLoader(
            stream,
            batch_size=micro,
            num_workers=cfg.num_workers,
            collate_fn=collate_skip_bad,
            pin_memory=torch.cuda.is_available(),
        )
        return EpochMix(loader, epoch, class_names, task, reference)

    return batches
