"""`train()`: data, split, model, fit, threshold on val, report on test, model file."""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from cxrkit.classifier.dataset import CXRDataset, collate_skip_bad
from cxrkit.data.augment import build_augmentation_from_dict
from cxrkit.data.balance import class_weights, sample_weights
from cxrkit.data.cache import default_cache_dir, file_sha256
from cxrkit.data.identity import dataset_name, portable_paths
from cxrkit.data.splits import make_splits, read_split_csv, write_split_csv
from cxrkit.data.table import LabelTable, load_table
from cxrkit.errors import CxrkitError
from cxrkit.evaluate import choose_thresholds, evaluate_predictions
from cxrkit.evaluate.transfer import headline
from cxrkit.fit import distributed
from cxrkit.fit.checkpoint import refuse_fresh_start
from cxrkit.io.atomic import atomic_write_text
from cxrkit.logfile import attach_log_file
from cxrkit.models import create_model, get_spec
from cxrkit.models.inference import predict_loader, prepare_for_device
from cxrkit.models.model_file import provenance, save_model_file
from cxrkit.models.ood import fit_feature_reference
from cxrkit.train.config import TrainConfig
from cxrkit.train.features import FeatureBatches, extract_features, single_cpu_thread
from cxrkit.train.finetune import freeze_all_but_last, make_film_batches
from cxrkit.train.loop import fit
from cxrkit.train.optim import build_loss
from cxrkit.train.result import TrainResult
from cxrkit.train.streaming import stream_batches

log = logging.getLogger("cxrkit.train")
MODEL_NAME = "model.safetensors"


def train(
    data: str | Path,
    out_dir: str | Path,
    cfg: TrainConfig,
    *,
    resume: bool = False,
    show_progress: bool = True,
    external: Sequence[str | Path] = (),
) -> TrainResult | None:
    """Train on `data` (labels.csv or class folders) into `out_dir`.

    Returns a `TrainResult`: the test-split `metrics`, the `run_dir` and the trained
    `model` (a `Classifier`, loaded from `model.safetensors` on first use). Inside a
    torchrun / srun launch (`cxrkit.fit.distributed`) all ranks train, rank 0 writes
    the run and returns its result, the other ranks return None.

    Writes `model.safetensors`, `split.csv`, `train.log`, `config.yaml`, `history.json`,
    `training_curves.png`, and the test split's `metrics.json`, plots and `report.html`.
    Each `external` labelled set (films from other sites) is scored into
    `external/NAME/`, shown beside the test split in `report.html` and `transfer.json`,
    and its headline is kept in the model card (`metrics.external`).
    """
    out = Path(out_dir)
    # a fresh start would delete the killed run's epochs (a finished run may be redone)
    refuse_fresh_start(out / "checkpoints", resume, finished=(out / MODEL_NAME).is_file())
    out.mkdir(parents=True, exist_ok=True)
    ctx, device = distributed.setup(cfg.device)  # joins a torchrun / srun launch, if any
    if ctx.is_main:  # rank 0 alone writes the run's files; other ranks return None
        attach_log_file(out / "train.log")
    t_start = time.time()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    spec = get_spec(cfg.backbone)  # an unknown backbone or a too small size fails before any work
    size = cfg.image_size or spec.input_size
    if size < spec.min_input_size:
        raise CxrkitError(
            f"image_size {size} is too small for {spec.name} (at least {spec.min_input_size})"
        )

    table = load_table(data, label_column=cfg.label_column, task=cfg.task)
    selection_sets = selection_records(cfg)  # before training: a wrong path costs nothing
    if table.skipped:
        log.warning("%d rows skipped (first: %s)", len(table.skipped), table.skipped[0])
    if cfg.max_images and len(table) > cfg.max_images:
        table = _subset(table, cfg.max_images, cfg.seed)
    if cfg.fix_polarity:  # corrected copies of surely inverted films (cxrkit.polarity)
        table = _fix_polarity(table, out / "polarity_fixed", cfg.num_workers)
    task = table.task
    splits = _splits_for(table, cfg, out, resume)
    log.info(
        "data %s: %d films, task %s, classes %s, split %s",
        data,
        len(table),
        task,
        table.class_names,
        {k: len(v) for k, v in splits.items()},
    )
    _check_resumed_config(out / "config.yaml", cfg, resume)
    if ctx.is_main:
        atomic_write_text(out / "config.yaml", _yaml(cfg.to_dict()))  # `--resume` reads it back

    model = create_model(
        cfg.backbone,
        num_classes=len(table.class_names),
        weights=cfg.weights,
        random_init=cfg.random_init,
        head_hidden=cfg.head_hidden,
        dropout=cfg.dropout,
    )
    model = prepare_for_device(model, device)
    distributed.seed_rank(cfg.seed)  # same initial weights on all ranks, own noise after
    targets = table.targets()  # uncertain findings count as absent in val/test metrics
    # ... but are NaN for the class weights (and the loss skips them)
    train_targets = table.targets(mask_uncertain=True)[splits["train"]]
    weights = class_weights(train_targets, task) if cfg.balance == "loss" else None
    loss_fn = build_loss(task, weights)
    cache_root = Path(cfg.cache_dir) if cfg.cache_dir else default_cache_dir()
    augment = build_augmentation_from_dict(cfg.augment) if cfg.augment is not None else None

    def run_fit(module, train_batches, val_batches):  # the mode gives module and batches
        return fit(
            module, train_batches, val_batches, loss_fn, task, cfg, out / "checkpoints",
            device, resume, show_progress,
        )  # fmt: skip

    if cfg.mode == "features":
        feats = _all_features(model, table, splits, cfg, size, cache_root, device, augment)
        reference_codes = (feats["train"][0][: len(splits["train"])], feats["val"][0])
        for name, (x, y) in feats.items():  # unreadable films have NaN codes: drop them
            ok = ~np.isnan(x).any(1)
            feats[name] = (x[ok], y[ok])
        sample_w = sample_weights(feats["train"][1]) if cfg.balance == "sampler" else None
        with single_cpu_thread(device):  # a small head: extra threads only spin-wait
            result = run_fit(
                model.head,
                FeatureBatches(
                    *feats["train"],
                    cfg.batch_size,
                    cfg.seed,
                    sample_weights=sample_w,
                    accumulate=cfg.accumulate,
                ),
                lambda: FeatureBatches(*feats["val"], 512, cfg.seed, shuffle=False)(),
            )
        if not ctx.is_main:
            return None
        val_probs = _head_probs(model, feats["val"][0], task, device)
        test_probs = _head_probs(model, feats["test"][0], task, device)
        val_y, test_y = feats["val"][1], feats["test"][1]
    else:
        if cfg.finetune_blocks is not None:
            freeze_all_but_last(model, cfg.finetune_blocks)
        if cfg.shards:  # training films streamed from shards (cxrkit.train.streaming)
            train_batches = stream_batches(cfg, size, table.class_names, task, augment)
        else:
            train_batches = make_film_batches(
                table,
                splits["train"],
                size,
                cfg,
                cache_root,
                augment,
                shuffle=True,
                targets=targets,
            )
        val_batches = make_film_batches(
            table, splits["val"], size, cfg, cache_root, None, shuffle=False
        )
        result = run_fit(model, train_batches, lambda: val_batches(0))
        if not ctx.is_main:
            return None
        val_probs, val_idx = _film_probs(
            model, table, splits["val"], size, cfg, cache_root, task, device
        )
        test_probs, test_idx = _film_probs(
            model, table, splits["test"], size, cfg, cache_root, task, device
        )
        val_y, test_y = targets[val_idx], targets[test_idx]
        reference_codes = _reference_codes(model, table, splits, size, cfg, cache_root, device)
    reference = fit_feature_reference(*reference_codes)
    train_seconds = time.time() - t_start

    thresholds = choose_thresholds(
        val_y,
        val_probs,
        task,
        method=cfg.threshold_method,
        target_sensitivity=cfg.target_sensitivity,
        class_names=table.class_names,
    )
    fields = _model_card(  # the card's JSON, validated when saved
        cfg, table, spec, size, task, thresholds, splits, result, train_seconds, data
    )
    fields["selection_sets"] = selection_sets
    fields["ood"] = reference.card()
    fields["training"]["processes"] = ctx.world_size  # data-parallel ranks (1: one process)
    if cfg.shards:  # `data`'s train split gave only the class weights and the reference
        fields["training"]["n_train_streamed_per_epoch"] = cfg.epoch_films
    fields.update(model_identity(cfg, out))
    metrics = evaluate_predictions(
        test_y,
        test_probs,
        table.class_names,
        task,
        out,
        thresholds=thresholds,
        n_bootstrap=cfg.n_bootstrap,
        title=f"cxrkit — {cfg.backbone} ({cfg.mode}) on its test split",
        model_card=fields,
        history=result.history,
    )
    val_metrics = {"val_auc_best": result.best_score, "best_epoch": result.best_epoch}
    fields["metrics"] = {"test": headline(metrics), "validation": val_metrics}
    extra = reference.tensors()
    save_model_file(out / MODEL_NAME, model.cpu(), fields, extra)
    if external:
        fields["metrics"]["external"] = _score_external(out, metrics, external, cfg)
        save_model_file(out / MODEL_NAME, model, fields, extra)
    atomic_write_text(out / "history.json", json.dumps(result.history, indent=2))
    log.info(
        "test: n=%d accuracy %.4f auc %s (CI %s); model %s; %.0fs",
        metrics["n"],
        metrics["accuracy"],
        metrics.get("auc"),
        metrics.get("auc_ci"),
        out / MODEL_NAME,
        train_seconds,
    )
    return TrainResult(metrics=metrics, run_dir=out, model_path=out / MODEL_NAME)


def _score_external(out: Path, metrics: dict, external: Sequence[str | Path], cfg) -> dict:
    """Score the saved model on each external set; the run's report shows them side by side."""
    from cxrkit.evaluate.model import external_headlines, score_external

    rows = score_external(
        out / MODEL_NAME,
        ("internal test split", metrics),
        external,
        out,
        title=f"cxrkit — {cfg.backbone} ({cfg.mode}): internal test split and external sets",
        num_workers=cfg.num_workers,
        n_bootstrap=cfg.n_bootstrap,
        cache_dir=cfg.cache_dir or default_cache_dir(),
        device=cfg.device,
    )
    for row in rows[1:]:
        log.info(
            "external %s: n=%d accuracy %.4f auc %s sensitivity %s specificity %s",
            row["set"],
            row["n"],
            row["accuracy"],
            row.get("auc"),
            row.get("sensitivity"),
            row.get("specificity"),
        )
    return external_headlines(rows)


def _all_features(model, table, splits, cfg, size, cache_root, device, augment):
    key = {"arch": cfg.backbone, "weights": _weights_id(cfg)}
    kw = dict(
        size=size,
        resize_mode=cfg.resize_mode,
        cache_root=cache_root / "features",
        key_parts=key,
        device=device,
        num_workers=cfg.num_workers,
        seed=cfg.seed,
        crop=cfg.crop,
    )
    targets = table.targets()
    # the head's loss skips uncertain findings (NaN); validation and test count them absent
    train_targets = table.targets(mask_uncertain=True)
    out = {}
    for name, idx in splits.items():
        x = extract_features(model, table, idx, **kw)
        y = (train_targets if name == "train" else targets)[idx]
        if name == "train":
            xs, ys = [x], [y]
            for copy in range(cfg.feature_augment_copies):
                # the augmentation's options are part of the cache key of augmented codes
                aug_kw = {**kw, "seed": cfg.seed + 1 + copy}
                aug_kw["key_parts"] = {**key, "augment": cfg.augment}
                xs.append(extract_features(model, table, idx, transform=augment, **aug_kw))
                ys.append(y)
            x, y = np.concatenate(xs), np.concatenate(ys)
        out[name] = (x, y)
    return out


def _head_probs(model, x: np.ndarray, task: str, device) -> np.ndarray:
    from cxrkit.models.inference import logits_to_probs

    model.head.eval()
    with torch.inference_mode():
        logits = model.head(torch.as_tensor(x, dtype=torch.float32, device=device))
        return logits_to_probs(logits, task).float().cpu().numpy()


#: Finetune mode fits the feature reference on at most this many training films.
REFERENCE_MAX_TRAIN = 2000


def _reference_codes(model, table, splits, size, cfg, cache_root, device):
    """Pooled features of (a sample of) the training films and of the validation films."""
    rng = np.random.default_rng(cfg.seed)
    train_idx = splits["train"]
    if len(train_idx) > REFERENCE_MAX_TRAIN:
        train_idx = np.sort(rng.choice(train_idx, REFERENCE_MAX_TRAIN, replace=False))
    codes = [
        _film_probs(model, table, idx, size, cfg, cache_root, table.task, device, "features")[0]
        for idx in (train_idx, splits["val"])
    ]
    return codes[0], codes[1]


def _film_probs(model, table, idx, size, cfg, cache_root, task, device, output="probs"):
    """Probabilities (or pooled features) of the films `idx`, read as the card will say."""
    ds = CXRDataset(
        table,
        indices=idx,
        size=size,
        resize_mode=cfg.resize_mode,
        cache_dir=cache_root / "decoded",
        crop=cfg.crop,
    )
    loader = DataLoader(
        ds, batch_size=cfg.batch_size, num_workers=cfg.num_workers, collate_fn=collate_skip_bad
    )
    return predict_loader(model, loader, task, device, output=output)


_RUN_ONLY = {"num_workers", "cache_dir", "device", "n_bootstrap"}


def _check_resumed_config(path: Path, cfg: TrainConfig, resume: bool) -> None:
    """On resume, warn when options that shape the model differ from the run's config.yaml."""
    if not resume or not path.is_file():
        return
    import yaml

    try:
        before = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        return
    now = cfg.to_dict()
    changed = sorted(k for k in now if k not in _RUN_ONLY and k in before and before[k] != now[k])
    if changed:
        log.warning(
            "resuming with options that differ from %s: %s",
            path,
            ", ".join(f"{k} {before[k]!r} -> {now[k]!r}" for k in changed),
        )


def _splits_for(
    table: LabelTable, cfg: TrainConfig, out: Path, resume: bool
) -> dict[str, np.ndarray]:
    split_csv = out / "split.csv"
    if cfg.split_file:
        splits = read_split_csv(cfg.split_file, table)
    elif resume and split_csv.is_file():
        splits = read_split_csv(split_csv, table)
    else:
        splits = make_splits(table, val=cfg.val_fraction, test=cfg.test_fraction, seed=cfg.seed)
    for name in ("train", "val", "test"):
        if len(splits.get(name, [])) == 0:
            raise CxrkitError(f"the {name} split is empty: the dataset is too small to split")
    if distributed.is_main():
        write_split_csv(split_csv, table, splits)
    return splits


def _fix_polarity(table: LabelTable, folder: Path, num_workers: int) -> LabelTable:
    from cxrkit.polarity import fix_table_polarity

    if distributed.current().active:  # every rank would write the same PNGs, not atomically
        raise CxrkitError("`fix_polarity` runs in one process only: train with `nproc` 1")
    return fix_table_polarity(table, folder, num_workers=num_workers)


def _subset(table: LabelTable, n: int, seed: int) -> LabelTable:
    from sklearn.model_selection import train_test_split

    y = table.targets()
    strat = y if y.ndim == 1 else None
    keep, _ = train_test_split(
        np.arange(len(table)), train_size=n, random_state=seed, stratify=strat
    )
    return table.subset(np.sort(keep))


def _weights_id(cfg: TrainConfig) -> str:
    if cfg.weights in (None, "hub"):
        return f"{cfg.weights or 'random'}-{cfg.seed}"
    return file_sha256(cfg.weights)[:16]


def _model_card(cfg, table, spec, size, task, thresholds, splits, result, seconds, data) -> dict:
    return {
        "architecture": cfg.backbone,
        "model_kwargs": {"head_hidden": cfg.head_hidden, "dropout": cfg.dropout},
        "task": task,
        "class_names": list(table.class_names),
        "label_column": cfg.label_column,
        "preprocessing": {
            "size": size,
            "resize_mode": cfg.resize_mode,
            "crop": cfg.crop,
            "channels": "grayscale",
            "input_range": [0.0, 1.0],
            "mean": list(spec.mean),
            "std": list(spec.std),
            "normalization": "applied inside the network",
        },
        "thresholds": [float(t) for t in thresholds],
        "threshold_method": cfg.threshold_method,
        "training": {
            "data": data_fingerprint(table, data),
            "mode": cfg.mode,
            "weights": _weights_record(cfg),
            "n_train": int(len(splits["train"])),
            "class_counts": _class_counts(table, splits["train"]),
            "n_val": int(len(splits["val"])),
            "n_test": int(len(splits["test"])),
            "epochs_run": len(result.history),
            "best_epoch": result.best_epoch,
            "stopped_early": result.stopped_early,
            "wall_seconds": round(seconds, 1),
            "config": _portable_config(cfg),
            **provenance(),
        },
    }


def model_identity(cfg: TrainConfig, out: Path) -> dict[str, str]:
    """The card's `name` and `version`: set in the config, else the run folder and cxrkit's."""
    from cxrkit.version import __version__

    name = cfg.model_name or out.resolve().name
    return {"name": name, "version": cfg.model_version or __version__}


_PATH_OPTIONS = ("weights", "cache_dir", "split_file", "shards")


def selection_records(cfg: TrainConfig) -> list[dict[str, Any]]:
    """The config's `selection_sets` as the card names them: set name, fingerprint, what it
    chose (`cxrkit.data.selection`); a set that cannot be read is an error here."""
    from cxrkit.data.identity import set_fingerprint
    from cxrkit.data.selection import add_selection_set

    out: list[dict[str, Any]] = []
    for source, used in (cfg.selection_sets or {}).items():
        try:
            table = load_table(source, label_column=cfg.label_column)
        except CxrkitError as exc:
            raise CxrkitError(f"selection_sets: {exc}") from exc
        chose = [used] if isinstance(used, str) else [str(u) for u in used]
        out = add_selection_set(out, dataset_name(source), set_fingerprint(source, table), chose)
    return out


def data_fingerprint(table: LabelTable, data: str | Path) -> dict[str, Any]:
    """The training data as a name plus a content fingerprint, never a local path.

    `labels_sha256` hashes the (relative path, labels, patient) rows actually used, so the
    same films and labels give the same fingerprint on any machine.
    """
    h = hashlib.sha256()
    for i, rec in enumerate(table.records):
        h.update(f"{table.relpath(i)}\t{rec.labels}\t{rec.patient_id}\n".encode())
    return {
        "name": dataset_name(data),
        "labels_sha256": h.hexdigest(),
        "n_films": len(table),
        "class_counts": table.class_counts(),
    }


def _weights_record(cfg: TrainConfig) -> dict[str, Any] | str | None:
    """Initial weights as a file name plus content hash ('hub' / None as they are)."""
    if cfg.weights in (None, "hub"):
        return cfg.weights
    return {"file": Path(cfg.weights).name, "sha256_16": _weights_id(cfg)}


def _portable_config(cfg: TrainConfig) -> dict[str, Any]:
    """The config for the card: path options reduced to their file or folder names."""
    out = portable_paths(cfg.to_dict(), _PATH_OPTIONS)
    if cfg.selection_sets:
        out["selection_sets"] = {dataset_name(k): v for k, v in cfg.selection_sets.items()}
    return out


def _class_counts(table: LabelTable, idx: np.ndarray) -> dict[str, int]:
    """Films per class in a split (multi-label: films carrying each finding)."""
    y = table.targets()[idx]
    n_classes = len(table.class_names)
    counts = y.sum(axis=0) if y.ndim == 2 else np.bincount(y, minlength=n_classes)
    return {c: int(k) for c, k in zip(table.class_names, counts, strict=True)}


def _yaml(d: dict) -> str:
    import yaml

    return yaml.safe_dump(d, sort_keys=False)
