"""`cxr train`, `cxr evaluate`, `cxr predict`: the classification verbs."""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Attach the classification verbs to the top-level app."""
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("predict")(predict_cmd)


def _console_logging() -> None:
    logger = logging.getLogger("cxrkit")
    logger.setLevel(logging.INFO)
    if not any(isinstance(h, RichHandler) for h in logger.handlers):
        logger.addHandler(RichHandler(console=console, show_path=False, markup=False))


def train_cmd(
    data: Annotated[Path, typer.Option(help="labels.csv, a folder holding one, or class folders")],
    out: Annotated[Path, typer.Option(help="run directory (model, split, log, report)")],
    config: Annotated[
        Path | None, typer.Option(help="YAML config; CLI options override it")
    ] = None,
    backbone: Annotated[str | None, typer.Option(help="backbone name (cxrkit.models)")] = None,
    mode: Annotated[str | None, typer.Option(help="features | finetune")] = None,
    task: Annotated[str | None, typer.Option(help="binary | multiclass | multilabel")] = None,
    label_column: Annotated[str | None, typer.Option(help="labels.csv column to learn")] = None,
    weights: Annotated[
        str | None, typer.Option(help="local pretrained weights file, or 'hub'")
    ] = None,
    random_init: Annotated[
        bool, typer.Option("--random-init", help="train from random weights")
    ] = False,
    epochs: Annotated[int | None, typer.Option()] = None,
    batch_size: Annotated[int | None, typer.Option()] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    image_size: Annotated[int | None, typer.Option()] = None,
    max_images: Annotated[int | None, typer.Option(help="train on a stratified subset")] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    num_workers: Annotated[int | None, typer.Option()] = None,
    cache_dir: Annotated[str | None, typer.Option(help="decoded films + CNN codes cache")] = None,
    resume: Annotated[
        bool, typer.Option("--resume", help="continue after the last checkpoint")
    ] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
) -> None:
    """Train a classifier; writes RUN_DIR/model.safetensors, metrics.json, report.html."""
    from cxrkit.train import load_config, train

    overrides = dict(
        backbone=backbone,
        mode=mode,
        task=task,
        label_column=label_column,
        weights=weights,
        random_init=random_init or None,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        image_size=image_size,
        max_images=max_images,
        seed=seed,
        num_workers=num_workers,
        cache_dir=cache_dir,
    )
    cfg = load_config(config, overrides)
    _console_logging()
    metrics = train(data, out, cfg, resume=resume, show_progress=not no_progress)
    _print_headline(metrics, out)


def evaluate_cmd(
    model: Annotated[Path, typer.Argument(help="model file or run directory")],
    data: Annotated[Path, typer.Option(help="labelled dataset")],
    out: Annotated[Path, typer.Option(help="where metrics.json, plots and report.html go")],
    split: Annotated[
        str | None, typer.Option(help="train | val | test (needs --split-file)")
    ] = None,
    split_file: Annotated[Path | None, typer.Option(help="split.csv of a run")] = None,
    label_column: Annotated[str | None, typer.Option()] = None,
    batch_size: Annotated[int, typer.Option()] = 32,
    num_workers: Annotated[int, typer.Option()] = 2,
) -> None:
    """Evaluate a model on labelled films: metrics.json, plots and report.html."""
    from cxrkit.infer.evaluate_model import evaluate_model

    metrics = evaluate_model(
        model,
        data,
        out,
        split=split,
        split_file=split_file,
        label_column=label_column,
        batch_size=batch_size,
        num_workers=num_workers,
    )
    _print_headline(metrics, out)


def predict_cmd(
    model: Annotated[Path, typer.Argument(help="model file or run directory")],
    paths: Annotated[list[str], typer.Argument(help="films, folders or globs")],
    out: Annotated[
        Path | None, typer.Option(help="preds.csv or preds.json (default: CSV to stdout)")
    ] = None,
    batch_size: Annotated[int, typer.Option()] = 32,
    num_workers: Annotated[int, typer.Option()] = 2,
) -> None:
    """Predict class probabilities for films; unreadable files are listed with their error."""
    from cxrkit.infer.paths import expand_paths
    from cxrkit.infer.predict import predict_batches
    from cxrkit.models.model_file import load_model_file

    net, card = load_model_file(model)
    files = expand_paths(paths)
    rows = predict_batches(net, card, files, batch_size=batch_size, num_workers=num_workers)
    n_ok = n_bad = 0
    if out is not None and out.suffix.lower() == ".json":
        results = list(rows)
        out.write_text(json.dumps(results, indent=2))
        n_bad = sum("error" in r for r in results)
        n_ok = len(results) - n_bad
    else:
        handle = out.open("w", newline="") if out else sys.stdout
        writer = csv.writer(handle)
        writer.writerow(["path", "label", *card["class_names"], "error"])
        for r in rows:
            if "error" in r:
                n_bad += 1
                writer.writerow([r["path"], "", *[""] * len(card["class_names"]), r["error"]])
            else:
                n_ok += 1
                p = r["probabilities"]
                writer.writerow(
                    [r["path"], r["label"], *[f"{p[c]:.6f}" for c in card["class_names"]], ""]
                )
        if out:
            handle.close()
    console.print(
        f"predicted {n_ok} film(s); {n_bad} unreadable" + (f"; wrote {out}" if out else "")
    )


def _print_headline(metrics: dict, out: Path) -> None:
    auc, ci = metrics.get("auc"), metrics.get("auc_ci")
    auc_txt = f"{auc:.4f} (95% CI {ci[0]:.4f}-{ci[1]:.4f})" if auc is not None and ci else str(auc)
    line = f"n={metrics['n']}  accuracy={metrics['accuracy']:.4f}  AUC={auc_txt}"
    if "sensitivity" in metrics:
        line += (
            f"  sensitivity={metrics['sensitivity']:.4f}  specificity={metrics['specificity']:.4f}"
        )
    console.print(line)
    console.print(f"report: {out / 'report.html'}")
