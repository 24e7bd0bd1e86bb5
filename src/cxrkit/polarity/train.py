"""`train_polarity`: films from every given set, half inverted, plus generated non-films.

Two stages. The base stage trains polarity and not-a-chest-film on every frontal training
film (lateral films left out). The view stage fine-tunes the whole net for a few hundred
steps on the same mix plus the lateral films of train/val patients, heavily augmented,
with a second loss on the frontal/lateral head. The leave-one-patient-out measurement
(`benchmarks/polarity_lateral_lopo.py`) repeats only the view stage from one base, each
time without one patient's films, so the shipped model comes from the procedure measured.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cxrkit.data.identity import data_record
from cxrkit.errors import ModelFileError
from cxrkit.io.atomic import atomic_write, atomic_write_text
from cxrkit.polarity.augment import film_batch, fragment_batch, other_batch, text_stamps
from cxrkit.polarity.films import (
    LUNG_SPLIT_SOURCES,
    FilmRef,
    assign_splits,
    decode_films,
    discover,
)
from cxrkit.polarity.model import logits_to_probs, save_polarity_model
from cxrkit.polarity.net import CLASSES, LATERAL, NEGATIVE, NOT_CXR, POSITIVE, PolarityNet
from cxrkit.polarity.synth import GENERATORS_VERSION, make_examples

log = logging.getLogger("cxrkit.polarity")


@dataclass
class PolarityTrainConfig:
    """Options of a polarity training run (saved into the model card)."""

    input_size: int = 64
    store_size: int = 128  # films are kept at this size for crop augmentation
    steps: int = 1600
    batch_size: int = 256
    other_fraction: float = 0.3  # share of each batch that is generated non-film images
    fragment_fraction: float = 0.25  # share of those that are small pieces of training films
    lr: float = 3e-3
    weight_decay: float = 1e-4
    label_smoothing: float = 0.02
    eval_every: int = 200
    others_per_kind: int = 500
    test_others_per_kind: int = 150  # held-out generators, for the reported detection rate
    seed: int = 0
    workers: int = 2
    threads: int = 1  # per process; 2 OpenMP threads crawl on a busy 2-core box
    # the learning-rate schedule follows the steps or the time, whichever runs out first
    max_minutes: float = 9.0
    # view stage: fine-tune with lateral films (of patients in `lateral_parts`)
    finetune_steps: int = 300
    finetune_lr: float = 1e-3
    lateral_fraction: float = 0.2  # share of a batch's films that are lateral films
    view_weight: float = 1.0  # weight of the frontal/lateral loss beside the class loss
    # False: the view head learns on films only. True was tried: held-out laterals with
    # black margins and burned-in text then looked like non-films to it (1 of 4 detected)
    view_on_non_films: bool = False
    lateral_parts: tuple[str, ...] = ("train", "val")
    lung_split_sources: tuple[str, ...] = LUNG_SPLIT_SOURCES


def train_polarity(
    data_dirs: Sequence[str | Path],
    out_dir: str | Path,
    cfg: PolarityTrainConfig | None = None,
    exclude: Sequence[str] = (),
    cache_dir: str | Path | None = None,
    base_model: str | Path | None = None,
) -> dict[str, Any]:
    """Train the screening network; writes polarity.safetensors, base.safetensors, metrics.json.

    Every film under `data_dirs` is taken as correctly displayed (MONOCHROME2); a
    labels.csv `view` of L marks a lateral film. The split is patient-disjoint
    (`assign_splits`). With `base_model` (a base.safetensors of an earlier run on the same
    data), the base stage is skipped. Returns the metrics (also in the model card).
    """
    cfg = cfg or PolarityTrainConfig()
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        t0 = time.time()
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        data = prepare_data(data_dirs, cfg, exclude, cache_dir)
        if base_model is None:
            base, base_info = train_base(data, cfg, t0)
            save_polarity_model(out / "base.safetensors", base, _base_card_fields(cfg))
            log.info("base stage saved: a rerun with --base %s skips it", out / "base.safetensors")
        else:
            base, base_info = load_base(base_model), {"from": Path(base_model).name}
            if Path(base_model).resolve() != (out / "base.safetensors").resolve():
                shutil.copyfile(base_model, out / "base.safetensors")  # the run is complete
        net, thresholds = fit_view_stage(base, data, cfg)
        metrics = finish(net, thresholds, data, cfg, out, data_dirs, exclude, t0)
        metrics["validation"] = base_info
        atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2))
        return metrics
    finally:
        torch.set_num_threads(threads)


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


def train_base(
    data: TrainingData, cfg: PolarityTrainConfig, t0: float | None = None
) -> tuple[PolarityNet, dict[str, Any]]:
    """Base stage: polarity + not-a-chest-film on frontal training films (no lateral film).

    Returns the net (best on validation) and {step, score} of that checkpoint.
    """
    t0 = time.time() if t0 is None else t0
    torch.manual_seed(cfg.seed)
    net = PolarityNet()
    tr = (data.split == "train") & (data.view == "frontal")
    va = (data.split == "val") & (data.view == "frontal")
    batches = _Batches(
        data.store[tr], data.plain[tr], data.source[tr], data.others, data.stamps, cfg
    )
    val_x, val_y = _val_films(data.plain[va], data.store[va], data.stamps, cfg)
    best = _fit(net, batches, val_x, val_y, data.val_others, cfg, t0)
    net.load_state_dict(best["state"])
    return net.eval(), {"step": best["step"], "score": best["score"]}


def load_base(path: str | Path) -> PolarityNet:
    """An unfused `PolarityNet` from a base.safetensors (or polarity.safetensors) file."""
    from safetensors.torch import load_file

    from cxrkit.card import CardError
    from cxrkit.models.model_file import read_card, read_card_json

    try:
        widths = read_card(Path(path)).network.widths
    except CardError:  # a base file of cxrkit before the typed card: task 'polarity-base'
        widths = read_card_json(Path(path)).get("widths")
    if widths is None:
        raise ModelFileError(f"{path}: not a polarity base or model file (no `widths`)")
    net = PolarityNet(widths=tuple(int(w) for w in widths))
    net.load_state_dict(load_file(str(path), device="cpu"), strict=True)
    return net.eval()


def finetune_view(
    base: PolarityNet,
    data: TrainingData,
    cfg: PolarityTrainConfig,
    holdout: Sequence[str] = (),
) -> PolarityNet:
    """View stage: a copy of `base` fine-tuned on frontal training films, generated
    non-films and the lateral films of `data.lateral_pool(cfg.lateral_parts, holdout)`,
    with the class loss plus `view_weight` x the frontal/lateral loss. Fixed steps, last
    weights kept (no lateral film is left to choose a checkpoint on)."""
    import copy

    torch.manual_seed(cfg.seed + 1)
    net = copy.deepcopy(base)
    tr = (data.split == "train") & (data.view == "frontal") & ~data.held(holdout)
    lat = data.lateral_pool(cfg.lateral_parts, holdout)
    if not lat.any():
        raise ValueError("the view stage needs lateral films (a labels.csv `view` of L)")
    log.info("view stage: %d lateral films of %d patients", lat.sum(), len(set(data.patient[lat])))
    batches = _Batches(
        data.store[tr],
        data.plain[tr],
        data.source[tr],
        data.others,
        data.stamps,
        cfg,
        laterals=(data.store[lat], data.plain[lat]),
        seed_offset=500,
    )
    workers = max(0, cfg.workers - 1)
    loader = torch.utils.data.DataLoader(
        batches, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None
    )
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.finetune_lr, weight_decay=cfg.weight_decay)
    t_start = time.time()
    for step, (x, y, v) in enumerate(loader, start=1):
        net.train()
        for group in opt.param_groups:
            group["lr"] = _lr_at(step / cfg.finetune_steps, cfg.finetune_lr, warmup=0.1)
        loss = _loss(net(x.contiguous(memory_format=torch.channels_last)), y, v, cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step % 50 == 0 or step == cfg.finetune_steps:
            log.info("view step %d loss %.4f (%.0fs)", step, loss.item(), time.time() - t_start)
        if step >= cfg.finetune_steps:
            break
    return net.eval()


def _loss(
    logits: torch.Tensor, y: torch.Tensor, v: torch.Tensor, cfg: PolarityTrainConfig
) -> torch.Tensor:
    """Class cross-entropy, plus `view_weight` x BCE of the view logit where v >= 0
    (1 = lateral film, 0 = frontal film or, with `view_on_non_films`, a non-film)."""
    loss = F.cross_entropy(logits[:, :LATERAL], y, label_smoothing=cfg.label_smoothing)
    judged = v >= 0
    if cfg.view_weight and judged.any():
        loss = loss + cfg.view_weight * F.binary_cross_entropy_with_logits(
            logits[judged, LATERAL], v[judged]
        )
    return loss


def fit_view_stage(
    base: PolarityNet,
    data: TrainingData,
    cfg: PolarityTrainConfig,
    holdout: Sequence[str] = (),
) -> tuple[PolarityNet, dict[str, float]]:
    """`finetune_view`, then the thresholds chosen on validation frontal films: the step
    the shipped model and every leave-one-patient-out fold run."""
    net = finetune_view(base, data, cfg, holdout)
    va = (data.split == "val") & (data.view == "frontal")
    varied, _ = _val_films(data.plain[va], data.store[va], data.stamps, cfg)
    return net, _choose_thresholds(net, data.plain[va], varied, data.val_others)


def finish(
    net: PolarityNet,
    thresholds: dict[str, float],
    data: TrainingData,
    cfg: PolarityTrainConfig,
    out: Path,
    data_dirs: Sequence[str | Path],
    exclude: Sequence[str],
    t0: float,
) -> dict[str, Any]:
    """Thresholds on validation, test metrics, the card; writes polarity.safetensors + split."""
    net.eval()
    metrics = _test_metrics(net, data, thresholds, cfg)
    split, source, view = data.split, data.source, data.view
    metrics["n_films"] = {
        s: {src: int(((split == s) & (source == src)).sum()) for src in sorted(set(source))}
        for s in ("train", "val", "test")
    }
    metrics["n_lateral_films"] = {
        s: int(((split == s) & (view == "lateral")).sum()) for s in ("train", "val", "test")
    }
    metrics["wall_seconds"] = round(time.time() - t0, 1)
    fields = {
        "task": "polarity",
        "class_names": list(CLASSES),
        "views": ["frontal", "lateral"],
        "preprocessing": _preprocessing(cfg),
        "operating_points": thresholds,
        "training": {
            "data": [data_record(d) for d in data_dirs],
            "exclude": [Path(e).name for e in exclude],
            "split": "lung sets by cxrkit.data.patient_split.patient_part, others 70/15/15 "
            "by a hash of set and patient",
            "config": asdict(cfg),
        },
        "metrics": metrics,
    }
    save_polarity_model(out / "polarity.safetensors", net, fields)
    _write_split(out / "split.csv", data.refs)
    log.info("done in %.0fs: %s", time.time() - t0, out / "polarity.safetensors")
    return metrics


def _preprocessing(cfg: PolarityTrainConfig) -> dict[str, Any]:
    """The card's `preprocessing`: films squashed to the input size, grey."""
    return {"size": cfg.input_size, "resize_mode": "squash", "channels": "grayscale"}


def _base_card_fields(cfg: PolarityTrainConfig) -> dict[str, Any]:
    """The card of base.safetensors: the base stage's net (polarity and not-a-chest-film
    on frontal films; its view head untrained), kept so a rerun can skip that stage."""
    return {
        "task": "polarity",
        "class_names": list(CLASSES),
        "preprocessing": _preprocessing(cfg),
        "name": "polarity base stage",
        "training": {"stage": "base", "config": asdict(cfg)},
    }


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


class _Batches(torch.utils.data.IterableDataset):
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


def _fit(
    net: PolarityNet,
    batches: _Batches,
    val_x: np.ndarray,
    val_y: np.ndarray,
    val_others: np.ndarray,
    cfg: PolarityTrainConfig,
    t0: float,
) -> dict[str, Any]:
    workers = max(0, cfg.workers - 1)  # one process augments while this one trains
    loader = torch.utils.data.DataLoader(
        batches, batch_size=None, num_workers=workers, prefetch_factor=4 if workers else None
    )
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best: dict[str, Any] = {"score": -1.0, "step": 0, "state": None}
    t_start = time.time()
    budget = max(1.0, t0 + cfg.max_minutes * 60 - t_start)
    for step, (x, y, _view) in enumerate(loader, start=1):
        net.train()
        progress = min(1.0, max(step / cfg.steps, (time.time() - t_start) / budget))
        for group in opt.param_groups:
            group["lr"] = _lr_at(progress, cfg.lr)
        x = x.contiguous(memory_format=torch.channels_last)
        logits = net(x)[:, :LATERAL]  # the base stage has no lateral film: no view loss
        loss = F.cross_entropy(logits, y, label_smoothing=cfg.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        last = progress >= 1.0
        if step % cfg.eval_every == 0 or last:
            score, detail = _val_score(net, val_x, val_y, val_others)
            log.info(
                "step %d loss %.4f val %s (%.0fs)", step, loss.item(), detail, time.time() - t0
            )
            if score >= best["score"]:
                state = {k: v.detach().clone() for k, v in net.state_dict().items()}
                best = {"score": score, "step": step, "state": state}
        if last:
            break
    return best


def _lr_at(progress: float, peak: float, warmup: float = 0.05) -> float:
    """Linear warm-up then cosine decay to 1% of `peak`; `progress` in [0, 1] (steps or time)."""
    if progress < warmup:
        return peak * max(progress / warmup, 0.01)
    t = (progress - warmup) / (1 - warmup)
    return peak * (0.01 + 0.99 * 0.5 * (1 + math.cos(math.pi * t)))


@torch.inference_mode()
def net_probs(net: torch.nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    """(N, 4) probabilities (class softmax, p(lateral)) of an unfused net; uint8 or [0, 1]."""
    net.eval()
    t = torch.as_tensor(x).float()
    if t.max() > 1.5:
        t = t / 255.0
    t = t.unsqueeze(1) if t.ndim == 3 else t
    return torch.cat([logits_to_probs(net(c)) for c in t.split(512)]).numpy()


def _both(films: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each film as read and inverted, with its polarity label."""
    x = films.astype(np.float32) / 255.0
    y = np.r_[np.full(len(x), POSITIVE), np.full(len(x), NEGATIVE)]
    return np.concatenate([x, 1.0 - x]), y


def _val_films(
    plain: np.ndarray, store: np.ndarray, stamps: torch.Tensor, cfg: PolarityTrainConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Validation films as read and inverted, plus two fixed varied views of each."""
    x, y = _both(plain)
    gen = torch.Generator().manual_seed(cfg.seed + 99)
    films = torch.from_numpy(store).float().div(255).unsqueeze(1)
    xs, ys = [x], [y]
    for _ in range(2):
        xv, yv = film_batch(films, stamps, cfg.input_size, gen)
        xs.append(xv[:, 0].numpy())
        ys.append(yv.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def _val_score(
    net: torch.nn.Module, x: np.ndarray, y: np.ndarray, others: np.ndarray
) -> tuple[float, str]:
    """Polarity accuracy + half of (1 - false alarms) + half of detection, on validation."""
    p = net_probs(net, x)
    pol_acc = float((np.where(p[:, NEGATIVE] > p[:, POSITIVE], NEGATIVE, POSITIVE) == y).mean())
    false_alarm = float((p[:, NOT_CXR] >= 0.5).mean())
    detect = float((net_probs(net, others)[:, NOT_CXR] >= 0.5).mean())
    score = pol_acc + 0.5 * (1 - false_alarm) + 0.5 * detect
    return score, f"polarity {pol_acc:.4f} false-alarm {false_alarm:.4f} detect {detect:.4f}"


def _choose_thresholds(
    net: torch.nn.Module, films: np.ndarray, varied: np.ndarray, others: np.ndarray
) -> dict:
    """From validation: not_cxr at 0.5, raised when needed so <= 0.5% of films (as read and
    inverted) are flagged; lateral 0.02 above every frontal film (as read, inverted and
    varied) and above 99% of the non-films, at least 0.5, at most 0.95."""
    x, _ = _both(films)
    p = net_probs(net, x)
    t = max(0.5, float(np.quantile(p[:, NOT_CXR], 0.995)) + 1e-4)
    t = min(t, 0.95)
    frontal = max(
        float(p[:, LATERAL].max(initial=0.0)),
        float(net_probs(net, varied)[:, LATERAL].max(initial=0.0)),
    )
    other = float(np.quantile(net_probs(net, others)[:, LATERAL], 0.99)) if len(others) else 0.0
    t_lat = min(max(0.5, frontal + 0.02, other + 0.02), 0.95)
    return {"not_cxr": round(t, 4), "fix": 0.9, "lateral": round(t_lat, 4)}


def _rate(flags: np.ndarray) -> dict[str, Any]:
    return {"n": int(len(flags)), "rate": float(flags.mean()) if len(flags) else float("nan")}


def _test_metrics(
    net: torch.nn.Module, data: TrainingData, thresholds: dict, cfg: PolarityTrainConfig
) -> dict[str, Any]:
    """On the test split, per source: polarity accuracy (films as read and inverted, plain
    and with one random variation), guard false alarms, lateral false alarms on frontal
    films; lateral detection on test lateral films; detection of held-out non-films."""
    t_nc, t_lat = thresholds["not_cxr"], thresholds["lateral"]
    test = data.split == "test"
    keys = ("polarity", "polarity_varied", "guard_false_alarm", "guard_false_alarm_varied")
    out: dict[str, Any] = {k: {} for k in (*keys, "view_false_alarm", "view_false_alarm_varied")}
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    pooled: dict[str, list[np.ndarray]] = {k: [] for k in out}
    for src in sorted(set(data.source[test])):
        mask = test & (data.source == src)
        frontal = np.tile(data.view[mask] == "frontal", 2)
        x, y = _both(data.plain[mask])
        p = net_probs(net, x)
        films = torch.from_numpy(data.store[mask]).float().div(255).unsqueeze(1)
        xv, yv = film_batch(films, data.stamps, cfg.input_size, gen)
        pv = net_probs(net, xv)
        frontal_v = data.view[mask] == "frontal"
        flags = {
            "polarity": _polarity(p) == y,
            "polarity_varied": _polarity(pv) == yv.numpy(),
            "guard_false_alarm": _flagged(p, t_nc, t_lat),
            "guard_false_alarm_varied": _flagged(pv, t_nc, t_lat),
            "view_false_alarm": p[frontal, LATERAL] >= t_lat,
            "view_false_alarm_varied": pv[frontal_v, LATERAL] >= t_lat,
        }
        for k, f in flags.items():
            pooled[k].append(f)
            out[k][src] = _rate(f)
    for k in out:
        out[k]["all"] = _rate(np.concatenate(pooled[k]))
    for k in ("polarity", "polarity_varied"):  # accuracy, as the card always said
        out[k] = {s: {"n": v["n"], "accuracy": v["rate"]} for s, v in out[k].items()}
    lat = test & (data.view == "lateral")
    if lat.any():
        x, _ = _both(data.plain[lat])
        p = net_probs(net, x)
        out["lateral_detection"] = {
            "as_read": _rate(p[: lat.sum(), LATERAL] >= t_lat),
            "inverted": _rate(p[lat.sum() :, LATERAL] >= t_lat),
            "called_not_cxr": _rate(_flagged(p, t_nc, t_lat)),
        }
    held, kinds = make_examples(
        "test",
        cfg.test_others_per_kind,
        cfg.seed + 2000,
        cfg.input_size,
        films=data.store[test & (data.view == "frontal")],
    )
    ph = net_probs(net, held)
    flagged = _flagged(ph, t_nc, t_lat)
    kinds_arr = np.array(kinds)
    out["guard_detection"] = {k: _rate(flagged[kinds_arr == k]) for k in sorted(set(kinds))}
    out["guard_detection"]["all"] = _rate(flagged)
    out["non_films_called_lateral"] = _rate(ph[:, LATERAL] >= t_lat)
    return out


def _flagged(p: np.ndarray, t_nc: float, t_lat: float) -> np.ndarray:
    """The guard's verdict (as `flags_not_cxr`): the class head's not_cxr. (`t_lat` is
    unused: a lateral call does not overrule it, the view head fires on CT slices.)"""
    del t_lat
    return p[:, NOT_CXR] >= t_nc


def _polarity(p: np.ndarray) -> np.ndarray:
    return np.where(p[:, NEGATIVE] > p[:, POSITIVE], NEGATIVE, POSITIVE)


def _write_split(path: Path, refs: list[FilmRef]) -> None:
    import csv

    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "source", "patient_id", "split", "view"])
        for r in refs:
            w.writerow([r.path, r.source, r.patient, r.split, r.view])
