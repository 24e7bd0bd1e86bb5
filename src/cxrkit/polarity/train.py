"""`train_polarity`: films from every given set, half inverted, plus generated non-films.

Two stages. The base stage trains polarity and not-a-chest-film on every frontal training
film (lateral films left out). The view stage fine-tunes the whole net for a few hundred
steps on the same mix plus the lateral films of train/val patients, heavily augmented,
with a second loss on the frontal/lateral head. The leave-one-patient-out measurement
(`benchmarks/polarity_lateral_lopo.py`) repeats only the view stage from one base, each
time without one patient's films, so the shipped model comes from the procedure measured.

The parts, by job: `train_config` (options), `train_data` (films, non-films, batches),
`train_fit` (the two stages on the training engine), `train_metrics` (validation score,
operating points, test metrics); this module runs them and writes the model files.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch

from cxrkit.data.identity import data_record
from cxrkit.errors import ModelFileError
from cxrkit.io.atomic import atomic_write_text
from cxrkit.polarity.films import FilmRef
from cxrkit.polarity.model import save_polarity_model
from cxrkit.polarity.net import CLASSES, PolarityNet
from cxrkit.polarity.train_config import PolarityTrainConfig
from cxrkit.polarity.train_data import TrainingData, prepare_data
from cxrkit.polarity.train_fit import finetune_view, fit_view_stage, train_base
from cxrkit.polarity.train_metrics import net_probs, score_test_split

__all__ = [
    "PolarityTrainConfig",
    "TrainingData",
    "finetune_view",
    "finish",
    "fit_view_stage",
    "load_base",
    "net_probs",
    "prepare_data",
    "train_base",
    "train_polarity",
]

log = logging.getLogger("cxrkit.polarity")


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
    metrics = score_test_split(net, data, thresholds, cfg)
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


def _write_split(path: Path, refs: list[FilmRef]) -> None:
    import csv

    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "source", "patient_id", "split", "view"])
        for r in refs:
            w.writerow([r.path, r.source, r.patient, r.split, r.view])
