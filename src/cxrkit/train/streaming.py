"""Finetune mode on streamed shards: the training films come from `cfg.shards`.

`cxr train --data SET --shards SPEC --epoch-films N` trains on the films of the WebDataset
shards `SPEC` (`cxrkit.data.shards`: folder, HTTP(S) or S3; labels from each film's
`.json` `label_column`, or `.cls`), N films per epoch over all ranks (default: the films
the converter's labels.csv beside the shards lists for them). `SET` stays a
map-style labelled set: its validation and test splits are scored exactly as without
shards, and its train split only serves the class weights and the feature reference.
Keep the shards' films apart from SET's patients (convert the splits separately).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import torch
from torch.utils.data import DataLoader

from cxrkit.classifier.dataset import collate_skip_bad
from cxrkit.data.shards import (
    FilmDecoder,
    LabelTarget,
    ShardStream,
    expand_shards,
    films_in_shards,
)
from cxrkit.errors import CxrkitError
from cxrkit.fit import distributed
from cxrkit.train.config import TrainConfig

log = logging.getLogger("cxrkit.train")

#: Films held in each reader's shuffle buffer (shards are also shuffled per epoch).
SHUFFLE_BUFFER = 256


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
) -> Callable[[int], DataLoader]:
    """A function epoch -> DataLoader over this rank's share of the shards.

    Micro-batches of `batch_size / (world_size * accumulate)`; every rank yields
    `epoch_films // world_size` films, so the ranks take the same number of steps.
    """
    urls, epoch_films = check_stream_config(cfg)
    log.info("streaming %d films per epoch from %d shards", epoch_films, len(urls))
    decode = FilmDecoder(
        LabelTarget(class_names, task, cfg.label_column), size, cfg.resize_mode, augment
    )
    micro = distributed.micro_batch(cfg.batch_size, cfg.accumulate)

    def batches(epoch: int) -> DataLoader:
        stream = ShardStream(
            urls, decode, epoch_films=epoch_films, seed=cfg.seed, shuffle_buffer=SHUFFLE_BUFFER
        )
        stream.set_epoch(epoch)
        return DataLoader(
            stream,
            batch_size=micro,
            num_workers=cfg.num_workers,
            collate_fn=collate_skip_bad,
            pin_memory=torch.cuda.is_available(),
        )

    return batches
