"""The data of a polarity training run: films decoded once (cached), their split, view and
patient, generated non-films, and the endless augmented training batches of both stages."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrkit.io.atomic import atomic_write
from cxrkit.polarity.augment import film_batch, fragment_batch, other_batch, text_stamps
from cxrkit.polarity.films import (
    LUNG_SPLIT_SOURCES,
    FilmRef,
    assign_splits,
    decode_films,
    discover,
)
from cxrkit.polarity.net import NEGATIVE, NOT_CXR, POSITIVE
from cxrkit.polarity.synth import GENERATORS_VERSION, make_examples
from cxrkit.polarity.train_config import PolarityTrainConfig

log = logging.getLogger("cxrkit.polarity")


@dataclass
class TrainingData:
    """Decoded films (uint8, at store and input size) with their split, source, view and
    patient, generated non-films and burned-in text stamps: everything both stages use."""

    refs: list[FilmRef]
    store: np.ndarray
    plain: np.ndarray
    split: np.ndarray
    source: np.ndarray
    view: np.ndarray
    patient: np.ndarray
    others: np.ndarray
    val_others: np.ndarray
    stamps: torch.Tensor

    def lateral_pool(self, parts: Sequence[str], holdout: Sequence[str] = ()) -> np.ndarray:
        """Mask of the lateral films the view stage trains on: split in `parts`, and no
        film of a `holdout` patient (of a lung-split source, where patient ids are shared)."""
        return (self.view == "lateral") & np.isin(self.split, list(parts)) & ~self.held(holdout)

    def held(self, holdout: Sequence[str]) -> np.ndarray:
        """Mask of the films of `holdout` patients of the lung-split sources."""
        lung = np.isin(self.source, list(LUNG_SPLIT_SOURCES))
        return lung & np.isin(self.patient, list(holdout))


def prepare_data(
    data_dirs: Sequence[str | Path],
    cfg: PolarityTrainConfig,
    exclude: Sequence[str] = (),
    cache_dir: str | Path | None = None,
) -> TrainingData:
    """Discover, split and decode every film; make (or load from the cache) the non-films."""
    t0 = time.time()
    refs = [r for d in data_dirs for r in discover(Path(d), exclude)]
    refs = assign_splits(refs, cfg.lung_split_sources)
    if not any(r.view == "lateral" and r.split in cfg.lateral_parts for r in refs):
        raise ValueError(  # before minutes of decoding and of the base stage
            "the view stage needs lateral films (a labels.csv `view` of L) in the "
            f"{'/'.join(cfg.lateral_parts)} split of the training sets"
        )
    refs, (store, plain) = _decoded(refs, (cfg.store_size, cfg.input_size), cfg, cache_dir)
    split = np.array([r.split for r in refs])
    view = np.array([r.view for r in refs])
    log.info(
        "films: %s, lateral %s",
        {s: int((split == s).sum()) for s in ("train", "val", "test")},
        {s: int(((split == s) & (view == "lateral")).sum()) for s in ("train", "val", "test")},
    )
    train_frontal = (split == "train") & (view == "frontal")
    others = _cached_array(
        cache_dir,
        f"others-{GENERATORS_VERSION}-{cfg.seed}-{cfg.others_per_kind}-{cfg.store_size}",
        [str(r.path) for r, keep in zip(refs, train_frontal, strict=True) if keep],
        lambda: make_examples(
            "train", cfg.others_per_kind, cfg.seed, cfg.store_size, films=store[train_frontal]
        )[0],
    )
    val_frontal = (split == "val") & (view == "frontal")
    val_others = make_examples(
        "train", 60, cfg.seed + 1000, cfg.input_size, films=store[val_frontal]
    )[0]
    stamps = text_stamps(300, cfg.input_size, cfg.seed)
    log.info("generated %d non-film images; %.0fs", len(others), time.time() - t0)
    return TrainingData(
        refs=refs,
        store=store,
        plain=plain,
        split=split,
        source=np.array([r.source for r in refs]),
        view=view,
        patient=np.array([r.patient for r in refs]),
        others=others,
        val_others=val_others,
        stamps=stamps,
    )


def _decoded(
    refs: list[FilmRef], sizes: tuple[int, ...], cfg: PolarityTrainConfig, cache_dir: Any
) -> tuple[list[FilmRef], list[np.ndarray]]:
    """Decode films once; reuse an .npz in `cache_dir` keyed by files, sizes and split."""
    key_text = "\n".join(f"{r.path}|{r.path.stat().st_size}|{r.split}" for r in refs)
    key = hashlib.sha256(f"{sizes}\n{key_text}".encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"polarity-films-{key}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        data = np.load(cache, allow_pickle=False)
        keep = set(data["kept"].tolist())
        kept = [r for r in refs if str(r.path) in keep]
        return kept, [data[f"s{s}"] for s in sizes]
    kept, stacks = decode_films(refs, sizes, cfg.workers)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        arrays = {f"s{s}": a for s, a in zip(sizes, stacks, strict=True)}
        kept_paths = np.array([str(r.path) for r in kept])
        atomic_write(cache, lambda fh: np.savez(fh, kept=kept_paths, **arrays))
    return kept, stacks


def _cached_array(
    cache_dir: Any, name: str, key_items: list[str], make: Callable[[], np.ndarray]
) -> np.ndarray:
    """`make()`, kept as .npy in `cache_dir` under `name` + a hash of `key_items`."""
    if not cache_dir:
        return make()
    digest = hashlib.sha256("\n".join(key_items).encode()).hexdigest()[:12]
    path = Path(cache_dir) / f"polarity-{name}-{digest}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    arr = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda fh: np.save(fh, arr, allow_pickle=False))
    return arr


def _source_weights(source: np.ndarray) -> np.ndarray:
    """Sampling weights that give small sources more turns (count ** -0.5 per film)."""
    names, counts = np.unique(source, return_counts=True)
    per = dict(zip(names, counts.astype(float) ** -0.5, strict=True))
    w = np.array([per[s] for s in source])
    return w / w.sum()


class TrainBatches(torch.utils.data.IterableDataset):
    """Endless augmented training batches (x, y): films half inverted, plus non-films."""

    def __init__(
        self,
        films,
        plain,
        sources,
        others,
        stamps,
        cfg: PolarityTrainConfig,
        laterals: tuple[np.ndarray, np.ndarray] | None = None,
        seed_offset: int = 0,
    ) -> None:
        self.films, self.plain, self.others = films, plain, others
        self.weights = _source_weights(sources)
        self.stamps = stamps
        self.cfg = cfg
        self.laterals = laterals  # (store, plain) of lateral films, or None
        self.seed_offset = seed_offset

    def __iter__(self):
        cfg = self.cfg
        info = torch.utils.data.get_worker_info()
        seed = cfg.seed * 1000 + self.seed_offset + (info.id if info else 0)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        n_other = int(cfg.batch_size * cfg.other_fraction)
        n_film = cfg.batch_size - n_other
        n_lat = int(round(n_film * cfg.lateral_fraction)) if self.laterals is not None else 0
        n_film -= n_lat
        unit = lambda a: torch.from_numpy(a).float().div(255).unsqueeze(1)  # noqa: E731
        while True:
            fi = rng.choice(len(self.films), n_film, p=self.weights)
            oi = rng.integers(0, len(self.others), n_other)
            plain = rng.random(n_film) < 0.25  # a quarter as read: squashed, no geometry
            xf, yf = film_batch(
                unit(self.films[fi]),
                self.stamps,
                cfg.input_size,
                gen,
                plain=unit(self.plain[fi]),
                use_plain=torch.from_numpy(plain),
            )
            xo = other_batch(unit(self.others[oi]), self.stamps, cfg.input_size, gen)
            n_frag = int(n_other * cfg.fragment_fraction)
            if n_frag:
                pieces = unit(self.films[rng.integers(0, len(self.films), n_frag)])
                xo[:n_frag] = fragment_batch(pieces, self.stamps, cfg.input_size, gen)
            xs, ys = [xf], [yf]
            v = [torch.zeros(n_film)]
            if n_lat:
                xl, yl = self._lateral_batch(rng, gen, n_lat, unit)
                xs.append(xl)
                ys.append(yl)
                v.append(torch.ones(n_lat))
            x = torch.cat([*xs, xo])
            y = torch.cat([*ys, torch.full((n_other,), NOT_CXR)])
            # view target: 1 lateral, 0 frontal; non-films -1 (no view loss) unless asked
            no_view = 0.0 if cfg.view_on_non_films else -1.0
            yield x, y, torch.cat([*v, torch.full((n_other,), no_view)])

    def _lateral_batch(self, rng, gen, n: int, unit) -> tuple[torch.Tensor, torch.Tensor]:
        """Lateral films with wider crops and rotations than frontal ones (few films)."""
        store, plain = self.laterals
        li = rng.integers(0, len(store), n)
        use_plain = torch.from_numpy(rng.random(n) < 0.2)
        return film_batch(
            unit(store[li]),
            self.stamps,
            self.cfg.input_size,
            gen,
            plain=unit(plain[li]),
            use_plain=use_plain,
            scale=(0.6, 1.0),
            max_rotate_deg=15.0,
        )


def both_polarities(films: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each film as read and inverted, with its polarity label."""
    x = films.astype(np.float32) / 255.0
    y = np.r_[np.full(len(x), POSITIVE), np.full(len(x), NEGATIVE)]
    return np.concatenate([x, 1.0 - x]), y


def val_films(
    plain: np.ndarray, store: np.ndarray, stamps: torch.Tensor, cfg: PolarityTrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Validation films as read and inverted, plus two fixed varied views of each."""
    x, y = both_polarities(plain)
    gen = torch.Generator().manual_seed(cfg.seed + 99)
    films = torch.from_numpy(store).float().div(255).unsqueeze(1)
    xs, ys = [x], [y]
    for _ in range(2):
        xv, yv = film_batch(films, stamps, cfg.input_size, gen)
        xs.append(xv[:, 0].numpy())
        ys.append(yv.numpy())
    return np.concatenate(xs), np.concatenate(ys)
