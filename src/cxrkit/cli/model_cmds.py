"""`cxr train`, `cxr evaluate`, `cxr predict`: the classification verbs."""

from __future__ import annotations

import csv
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape

from cxrkit.classifier.runtimes import RUNTIMES, runtime_help
from cxrkit.cli import dicom_flags
from cxrkit.io.atomic import atomic_write_text

if TYPE_CHECKING:
    from cxrkit.card import ModelCard

console = Console(stderr=True)
#: The runtimes of `Classifier.load`, from the one registry (it imports no torch).
RUNTIME_HELP = runtime_help()
# from the shipped film screen and the model's own feature reference
SCREEN_COLUMNS = (
    "not_cxr",
    "polarity",
    "view",
    "p_lateral",
    "out_of_distribution",
    "ood_score",
    "warning",
)


def register(app: typer.Typer) -> None:
    """Attach the classification verbs to the top-level app."""
    app.command("train")(train_cmd)
    app.command("evaluate")(evaluate_cmd)
    app.command("predict")(predict_cmd)
    app.command("predict-merge")(predict_merge_cmd)


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
    batch_size: Annotated[int | None, typer.Option(min=1)] = None,
    lr: Annotated[float | None, typer.Option()] = None,
    image_size: Annotated[int | None, typer.Option()] = None,
    crop: Annotated[str | None, typer.Option(help="lungs: crop films to the lung box")] = None,
    max_images: Annotated[int | None, typer.Option(help="train on a stratified subset")] = None,
    fix_polarity: Annotated[
        bool, typer.Option("--fix-polarity", help="invert films the polarity model is sure about")
    ] = False,
    finetune_blocks: Annotated[
        int | None, typer.Option(help="finetune mode: train only the last k backbone blocks")
    ] = None,
    seed: Annotated[int | None, typer.Option()] = None,
    num_workers: Annotated[int | None, typer.Option(min=0)] = None,
    cache_dir: Annotated[str | None, typer.Option(help="decoded films + CNN codes cache")] = None,
    device: Annotated[str | None, typer.Option(help="auto | cpu | cuda | cuda:N")] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="any config option as KEY=VALUE (YAML value), e.g. --set n_bootstrap=200"
        ),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="continue after the last checkpoint (default config: the run's config.yaml)",
        ),
    ] = False,
    no_progress: Annotated[bool, typer.Option("--no-progress")] = False,
    external: Annotated[
        list[Path] | None,
        typer.Option(help="labelled set from another site, scored beside the test split"),
    ] = None,
    nproc: Annotated[
        int | None,
        typer.Option(help="processes per node, launched by torchrun (--batch-size is global)"),
    ] = None,
    nnodes: Annotated[int, typer.Option(help="nodes (with --rdzv-endpoint)")] = 1,
    rdzv_endpoint: Annotated[
        str | None, typer.Option(help="HOST:PORT of the rendezvous, the same on every node")
    ] = None,
    accumulate: Annotated[
        int | None, typer.Option(help="micro-batches per optimizer step (gradient accumulation)")
    ] = None,
    shards: Annotated[
        str | None,
        typer.Option(help="finetune on WebDataset shards: DIR_OR_URL/{000000..000099}.tar"),
    ] = None,
    epoch_films: Annotated[
        int | None,
        typer.Option(help="with --shards: films per epoch (default: their labels.csv's count)"),
    ] = None,
    precision: Annotated[
        str | None,
        typer.Option(help="auto | fp32 | bf16 | fp16 (autocast; auto: bf16/fp16 on GPU)"),
    ] = None,
) -> None:
    """Train a classifier; writes RUN_DIR/model.safetensors, metrics.json, report.html."""
    from cxrkit.train import load_config, train
    from cxrkit.train.config import parse_overrides

    if resume and config is None and (out / "config.yaml").is_file():
        config = out / "config.yaml"
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
        crop=crop,
        max_images=max_images,
        fix_polarity=fix_polarity or None,
        finetune_blocks=finetune_blocks,
        seed=seed,
        num_workers=num_workers,
        cache_dir=cache_dir,
        device=device,
        accumulate=accumulate,
        precision=precision,
        shards=shards,
        epoch_films=epoch_films,
    )
    cfg = load_config(config, overrides, parse_overrides(set_ or []))
    _console_logging()
    if (nproc or 1) * nnodes > 1:  # start the processes, unless this is one of them
        from cxrkit.fit import distributed

        if distributed.launched_env() is None:
            raise typer.Exit(distributed.launch(sys.argv[1:], nproc or 1, nnodes, rdzv_endpoint))
    try:
        result = train(
            data, out, cfg, resume=resume, show_progress=not no_progress, external=external or ()
        )
    except KeyboardInterrupt:
        Console(stderr=True).print(
            f"[yellow]interrupted[/]: the last completed epoch is in {out / 'checkpoints'}; "
            "run the same command with --resume to continue"
        )
        raise typer.Exit(130) from None
    if result is None:  # a rank other than 0 of a distributed run: rank 0 reports
        return
    _print_headline(result.metrics, out)
    _print_external(out)


def evaluate_cmd(
    model: Annotated[Path, typer.Argument(help="model file or run directory")],
    data: Annotated[Path, typer.Option(help="labelled dataset")],
    out: Annotated[Path, typer.Option(help="where metrics.json, plots and report.html go")],
    split: Annotated[
        str | None, typer.Option(help="train | val | test (needs --split-file)")
    ] = None,
    split_file: Annotated[Path | None, typer.Option(help="split.csv of a run")] = None,
    label_column: Annotated[str | None, typer.Option()] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    num_workers: Annotated[int, typer.Option(min=0)] = 2,
    n_bootstrap: Annotated[int, typer.Option(help="bootstrap resamples for CIs (0: none)")] = 1000,
    cache_dir: Annotated[Path | None, typer.Option(help="decoded films cache")] = None,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    external: Annotated[
        list[Path] | None,
        typer.Option(help="another labelled set to score beside DATA (repeatable)"),
    ] = None,
    runtime: Annotated[str, typer.Option(help=RUNTIME_HELP)] = "torch",
) -> None:
    """Evaluate a model on labelled films: metrics.json, plots and report.html."""
    from cxrkit.evaluate.model import evaluate_model

    metrics = evaluate_model(
        model,
        data,
        out,
        split=split,
        split_file=split_file,
        label_column=label_column,
        batch_size=batch_size,
        num_workers=num_workers,
        n_bootstrap=n_bootstrap,
        cache_dir=cache_dir,
        device=device,
        external=external or (),
        runtime=runtime,
    )
    _print_headline(metrics, out)
    _print_external(out)


def predict_cmd(
    model: Annotated[Path, typer.Argument(help="model file or run directory")],
    paths: Annotated[list[str], typer.Argument(help="films, folders or globs")],
    out: Annotated[
        Path | None, typer.Option(help="preds.csv or preds.json (default: CSV to stdout)")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 32,
    num_workers: Annotated[int, typer.Option(min=0)] = 2,
    device: Annotated[str, typer.Option(help="auto | cpu | cuda | cuda:N")] = "auto",
    runtime: Annotated[str, typer.Option(help=RUNTIME_HELP)] = "torch",
    report: Annotated[
        Path | None,
        typer.Option(help="folder for a batch drift report (drift.json, drift.html)"),
    ] = None,
    dicom_out: Annotated[Path | None, typer.Option(help=dicom_flags.DICOM_OUT_HELP)] = None,
    uid_root: Annotated[str | None, typer.Option(help=dicom_flags.UID_ROOT_HELP)] = None,
    jpeg_draft: Annotated[
        bool,
        typer.Option(
            help="decode JPEGs at a reduced scale near the input size: faster on large "
            "JPEGs, probabilities move slightly (docs/SERVE.md)"
        ),
    ] = False,
    part: Annotated[
        str | None,
        typer.Option(
            help="K/N: predict only part K (from 0, as torchrun's RANK) of N of the sorted "
            "films, for one machine of N; join the parts with `cxr predict-merge` "
            "(docs/DISTRIBUTED.md)"
        ),
    ] = None,
) -> None:
    """Predict class probabilities for films; unreadable files are listed with their error."""
    from cxrkit.cli.threads import passive_openmp_waits

    passive_openmp_waits()  # before torch loads
    from cxrkit.classifier import Classifier
    from cxrkit.classifier.paths import require_films
    from cxrkit.errors import CxrkitError

    if out is not None and out.suffix.lower() not in (".csv", ".json"):
        raise CxrkitError(f"--out {out}: use a .csv or .json file name")
    if runtime not in RUNTIMES:
        raise CxrkitError(f"--runtime {runtime}: use one of {', '.join(RUNTIMES)}")
    split = None
    if part is not None:
        from cxrkit.classifier.parts import parse_part

        split = parse_part(part)  # before the model loads: a bad --part costs nothing
        if out is None:
            raise CxrkitError("--part needs --out (each part writes its own file)")
    clf = Classifier.load(model, runtime, device=device)
    card = clf.card
    files = require_films(paths)
    if split is not None:
        from cxrkit.classifier.parts import select_part, write_part_record
        from cxrkit.data.cache import file_sha256

        assert out is not None and clf.path is not None
        out.parent.mkdir(parents=True, exist_ok=True)
        write_part_record(out, file_sha256(clf.path), *split, files)
        files = select_part(files, *split)
    predict_kw = {"batch_size": batch_size, "num_workers": num_workers, "jpeg_draft": jpeg_draft}
    if dicom_out is not None:  # SR + heat-map overlay per DICOM film, one pass per film
        writer = dicom_flags.make_writer(clf, uid_root, runtime)
        rows = dicom_flags.predict_with_dicom(clf, files, writer, dicom_out, **predict_kw)
    else:
        rows = clf.predict_iter(files, **predict_kw)
    if report is not None:
        rows = collect_drift(rows, card, report)
    bad: list[dict] = []
    flagged: list[dict] = []  # not a chest film, or looks inverted (cxrkit.guard)
    n_ok = 0
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    if out is not None and out.suffix.lower() == ".json":
        results = list(rows)
        flagged = [r for r in results if r.get("warning")]
        bad = [r for r in results if "error" in r]
        n_ok = len(results) - len(bad)
        atomic_write_text(out, json.dumps(results, indent=2))
    else:
        handle = out.open("w", newline="") if out else sys.stdout
        try:
            writer = csv.writer(handle)
            writer.writerow(["path", "label", *card.class_names, "error", *SCREEN_COLUMNS])
            for r in rows:
                if "error" in r:
                    bad.append(r)
                    blanks = [""] * len(SCREEN_COLUMNS)
                    writer.writerow(
                        [r["path"], "", *[""] * len(card.class_names), r["error"], *blanks]
                    )
                else:
                    n_ok += 1
                    flagged += [r] if r.get("warning") else []
                    p = r["probabilities"]
                    writer.writerow(
                        [r["path"], r["label"], *[f"{p[c]:.6f}" for c in card.class_names], ""]
                        + [_cell(r.get(k)) for k in SCREEN_COLUMNS]
                    )
        finally:
            if out:
                handle.close()
    for r in flagged:
        console.print(f"[yellow]warning:[/] {escape(r['path'])}: {escape(r['warning'])}")
    for r in bad:
        console.print(
            f"[bold red]unreadable:[/] {escape(r['path'])}: {escape(r['error'])}",
            highlight=False,
            soft_wrap=True,
        )
    console.print(
        f"predicted {n_ok} film(s); {len(bad)} unreadable" + (f"; wrote {out}" if out else ""),
        highlight=False,
    )


def predict_merge_cmd(
    parts: Annotated[list[Path], typer.Argument(help="the outputs of `cxr predict --part K/N`")],
    out: Annotated[Path, typer.Option(help="the joined file (.csv or .json, as the parts)")],
) -> None:
    """Join the parts of a prediction split across machines, in single-run order; checks
    one model, one film list, every part once and every film exactly once."""
    from cxrkit.classifier.parts import merge_parts

    done = merge_parts(parts, out)
    console.print(
        f"merged {done['parts']} part(s): {done['films']} film(s); wrote {out}", highlight=False
    )


def _cell(value: object) -> str:
    """A CSV cell: empty for None, plain text otherwise."""
    return "" if value is None else str(value)


def collect_drift(rows, card: ModelCard, folder: Path):
    """Pass rows through, then write the drift report of the whole batch into `folder`."""
    from cxrkit.evaluate.drift import write_drift_report

    seen = []
    for r in rows:
        seen.append(r)
        yield r
    path = write_drift_report(seen, card, folder)
    console.print(f"drift report: {path}", highlight=False)


def _print_external(out: Path) -> None:
    """Print the internal-vs-external rows and their warnings (when the run scored any)."""
    from cxrkit.evaluate.model import TRANSFER_FILE

    path = out / TRANSFER_FILE
    if not path.is_file():
        return
    for row in json.loads(path.read_text()):
        auc = row.get("auc")
        line = f"{row['set']}: n={row['n']}  accuracy={row['accuracy']:.4f}"
        line += f"  AUC={auc:.4f}" if auc is not None else ""
        if row.get("sensitivity") is not None and row.get("specificity") is not None:
            line += f"  sensitivity={row['sensitivity']:.4f}  specificity={row['specificity']:.4f}"
        if row.get("used_for_selection"):
            line += "  (used for selection: optimistic)"
        console.print(line, highlight=False)
        for w in row.get("warnings", []):
            console.print(f"[yellow]warning:[/] {escape(w)}", highlight=False)


def _print_headline(metrics: dict, out: Path) -> None:
    auc, ci = metrics.get("auc"), metrics.get("auc_ci")
    auc_txt = f"{auc:.4f} (95% CI {ci[0]:.4f}-{ci[1]:.4f})" if auc is not None and ci else str(auc)
    line = f"n={metrics['n']}  accuracy={metrics['accuracy']:.4f}  AUC={auc_txt}"
    if "sensitivity" in metrics:
        line += (
            f"  sensitivity={metrics['sensitivity']:.4f}  specificity={metrics['specificity']:.4f}"
        )
    console.print(line)
    if metrics.get("used_for_selection"):
        console.print(f"[yellow]{escape(metrics['selection']['note'])}[/]", highlight=False)
    console.print(f"report: {out / 'report.html'}")
