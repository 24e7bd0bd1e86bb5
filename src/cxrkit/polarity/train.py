"""`train_polarity`: films from every given set, half inverted, plus generated non-films."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from cxrkit.data.identity import data_record
from cxrkit.io.atomic import atomic_write
from cxrkit.polarity.augment import film_batch, fragment_batch, other_batch, text_stamps
from cxrkit.polarity.films import FilmRef, decode_films, discover, split_patients
from cxrkit.polarity.model import save_polarity_model
from cxrkit.polarity.net import CLASSES, NEGATIVE, NOT_CXR, POSITIVE, PolarityNet
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


def train_polarity(
    data_dirs: Sequence[str | Path],
    out_dir: str | Path,
    cfg: PolarityTrainConfig | None = None,
    exclude: Sequence[str] = (),
    cache_dir: str | Path | None = None,
) -> dict[str, Any]:
    """Train the polarity / not-a-chest-film network; writes polarity.safetensors + metrics.json.

    Every film under `data_dirs` is taken as correctly displayed (MONOCHROME2); the
    patient-disjoint split is per source. Returns the metrics (also in the model card).
    """
    cfg = cfg or PolarityTrainConfig()
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.threads)
    try:
        return _train(data_dirs, Path(out_dir), cfg, exclude, cache_dir)
    finally:
        torch.set_num_threads(threads)


def _train(
    data_dirs: Sequence[str | Path],
    out: Path,
    cfg: PolarityTrainConfig,
    exclude: Sequence[str],
    cache_dir: str | Path | None,
) -> dict[str, Any]:
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    out.mkdir(parents=True, exist_ok=True)
    refs = split_patients([r for d in data_dirs for r in discover(Path(d), exclude)])
    refs, (store, plain) = _decoded(refs, (cfg.store_size, cfg.input_size), cfg, cache_dir)
    split = np.array([r.split for r in refs])
    source = np.array([r.source for r in refs])
    log.info("films: %s", {s: int((split == s).sum()) for s in ("train", "val", "test")})

    others = _cached_array(
        cache_dir,
        f"others-{GENERATORS_VERSION}-{cfg.seed}-{cfg.others_per_kind}-{cfg.store_size}",
        [str(r.path) for r in refs if r.split == "train"],
        lambda: make_examples(
            "train", cfg.others_per_kind, cfg.seed, cfg.store_size, films=store[split == "train"]
        )[0],
    )
    val_others = make_examples(
        "train", 60, cfg.seed + 1000, cfg.input_size, films=store[split == "val"]
    )[0]
    stamps = text_stamps(300, cfg.input_size, cfg.seed)
    log.info("generated %d non-film images; %.0fs", len(others), time.time() - t0)

    net = PolarityNet()
    tr = split == "train"
    batches = _Batches(store[tr], plain[tr], source[tr], others, stamps, cfg)
    val_x, val_y = _val_films(plain[split == "val"], store[split == "val"], stamps, cfg)
    best = _fit(net, batches, val_x, val_y, val_others, cfg, t0)
    net.load_state_dict(best["state"])
    net.eval()
    thresholds = _choose_thresholds(net, plain[split == "val"], val_others)
    metrics = _test_metrics(net, plain, store, split, source, stamps, thresholds, cfg)
    metrics["validation"] = {"step": best["step"], "score": best["score"]}
    metrics["n_films"] = {
        s: {src: int(((split == s) & (source == src)).sum()) for src in sorted(set(source))}
        for s in ("train", "val", "test")
    }
    metrics["wall_seconds"] = round(time.time() - t0, 1)
    card = {
        "task": "polarity",
        "class_names": list(CLASSES),
        "preprocessing": {"size": cfg.input_size, "resize_mode": "squash", "channels": "grayscale"},
        "thresholds": thresholds,
        "training": {
            "data": [data_record(d) for d in data_dirs],
            "exclude": [Path(e).name for e in exclude],
            "config": asdict(cfg),
        },
        "metrics": metrics,
    }
    save_polarity_model(out / "polarity.safetensors", net, card)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    _write_split(out / "split.csv", refs)
    log.info("done in %.0fs: %s", time.time() - t0, out / "polarity.safetensors")
    return metrics


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

    def __init__(self, films, plain, sources, others, stamps, cfg: PolarityTrainConfig) -> None:
        self.films, self.plain, self.others = films, plain, others
        self.weights = _source_weights(sources)
        self.stamps = stamps
        self.cfg = cfg

    def __iter__(self):
        cfg = self.cfg
        info = torch.utils.data.get_worker_info()
        seed = cfg.seed * 1000 + (info.id if info else 0)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        n_other = int(cfg.batch_size * cfg.other_fraction)
        n_film = cfg.batch_size - n_other
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
            x = torch.cat([xf, xo])
            y = torch.cat([yf, torch.full((n_other,), NOT_CXR)])
            yield x, y


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
    for step, (x, y) in enumerate(loader, start=1):
        net.train()
        progress = min(1.0, max(step / cfg.steps, (time.time() - t_start) / budget))
        for group in opt.param_groups:
            group["lr"] = _lr_at(progress, cfg.lr)
        x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(net(x), y, label_smoothing=cfg.label_smoothing)
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
def _probs(net: torch.nn.Module, x: np.ndarray | torch.Tensor) -> np.ndarray:
    net.eval()
    t = torch.as_tensor(x).float()
    if t.max() > 1.5:
        t = t / 255.0
    t = t.unsqueeze(1) if t.ndim == 3 else t
    return torch.cat([torch.softmax(net(c), 1) for c in t.split(512)]).numpy()


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
    p = _probs(net, x)
    pol_acc = float((np.where(p[:, NEGATIVE] > p[:, POSITIVE], NEGATIVE, POSITIVE) == y).mean())
    false_alarm = float((p[:, NOT_CXR] >= 0.5).mean())
    detect = float((_probs(net, others)[:, NOT_CXR] >= 0.5).mean())
    score = pol_acc + 0.5 * (1 - false_alarm) + 0.5 * detect
    return score, f"polarity {pol_acc:.4f} false-alarm {false_alarm:.4f} detect {detect:.4f}"


def _choose_thresholds(net: torch.nn.Module, films: np.ndarray, others: np.ndarray) -> dict:
    """not_cxr threshold: 0.5, raised when needed so <= 0.5% of val films are flagged."""
    x, _ = _both(films)
    p_film = _probs(net, x)[:, NOT_CXR]
    t = max(0.5, float(np.quantile(p_film, 0.995)) + 1e-4)
    t = min(t, 0.95)
    return {"not_cxr": round(t, 4), "fix": 0.9}


def _test_metrics(
    net: torch.nn.Module,
    plain: np.ndarray,
    store: np.ndarray,
    split: np.ndarray,
    source: np.ndarray,
    stamps: torch.Tensor,
    thresholds: dict,
    cfg: PolarityTrainConfig,
) -> dict[str, Any]:
    """Polarity accuracy per source (films as read and inverted), on plain and varied views,
    false alarms of the guard on the test films, detection of held-out generated non-films."""
    t_nc = thresholds["not_cxr"]
    test = split == "test"
    out: dict[str, Any] = {
        "polarity": {},
        "polarity_varied": {},
        "guard_false_alarm": {},
        "guard_false_alarm_varied": {},
    }
    gen = torch.Generator().manual_seed(cfg.seed + 7)
    varied_all, varied_alarms = [], []
    for src in [*sorted(set(source[test])), "all"]:
        mask = test & ((source == src) if src != "all" else True)
        x, y = _both(plain[mask])
        p = _probs(net, x)
        pred = np.where(p[:, NEGATIVE] > p[:, POSITIVE], NEGATIVE, POSITIVE)
        out["polarity"][src] = {"n": len(y), "accuracy": float((pred == y).mean())}
        out["guard_false_alarm"][src] = {"n": len(y), "rate": float((p[:, NOT_CXR] >= t_nc).mean())}
        if src != "all":
            films = torch.from_numpy(store[mask]).float().div(255).unsqueeze(1)
            xv, yv = film_batch(films, stamps, cfg.input_size, gen)
            pv = _probs(net, xv)
            hits = np.where(pv[:, NEGATIVE] > pv[:, POSITIVE], NEGATIVE, POSITIVE) == yv.numpy()
            varied_all.append(hits)
            out["polarity_varied"][src] = {"n": len(hits), "accuracy": float(hits.mean())}
            alarms = pv[:, NOT_CXR] >= t_nc
            varied_alarms.append(alarms)
            out["guard_false_alarm_varied"][src] = {"n": len(hits), "rate": float(alarms.mean())}
    allv = np.concatenate(varied_all)
    out["polarity_varied"]["all"] = {"n": len(allv), "accuracy": float(allv.mean())}
    alla = np.concatenate(varied_alarms)
    out["guard_false_alarm_varied"]["all"] = {"n": len(alla), "rate": float(alla.mean())}
    held, kinds = make_examples(
        "test", cfg.test_others_per_kind, cfg.seed + 2000, cfg.input_size, films=store[test]
    )
    ph = _probs(net, held)
    flagged = ph[:, NOT_CXR] >= t_nc
    kinds_arr = np.array(kinds)
    out["guard_detection"] = {
        k: {"n": int((kinds_arr == k).sum()), "rate": float(flagged[kinds_arr == k].mean())}
        for k in sorted(set(kinds))
    }
    out["guard_detection"]["all"] = {"n": len(flagged), "rate": float(flagged.mean())}
    return out


def _write_split(path: Path, refs: list[FilmRef]) -> None:
    import csv

    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "source", "patient_id", "split"])
        for r in refs:
            w.writerow([r.path, r.source, r.patient, r.split])
