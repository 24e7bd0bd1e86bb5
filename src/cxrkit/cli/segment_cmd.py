"""`cxr segment IMAGE... --out DIR`, `cxr segment train`, `ensemble` and `evaluate`: lung masks."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import click
import typer
from rich.console import Console
from typer.core import TyperGroup

console = Console(stderr=True)
HELP_OPTIONS = ("--help", "-h")


class DefaultToRun(TyperGroup):
    """A group where a first argument that names no subcommand means `run` (the default)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Insert `run` before arguments that are not a subcommand or a help flag."""
        if args and args[0] not in self.commands and args[0] not in HELP_OPTIONS:
            args = ["run", *args]
        return super().parse_args(ctx, args)


app = typer.Typer(
    cls=DefaultToRun,
    no_args_is_help=True,
    help=(
        "Lung masks. `cxr segment IMAGE... --out DIR` writes DIR/<stem>.png (0/255, original "
        "size) and DIR/overlays/<stem>.png; `cxr segment train` and `cxr segment evaluate` "
        "train and score a lung U-Net."
    ),
)


@app.command("run")
def run_cmd(
    images: Annotated[list[str], typer.Argument(metavar="IMAGE", help="films, folders or globs")],
    out: Annotated[Path, typer.Option(help="folder for masks (and overlays/)")],
    model: Annotated[
        Path | None, typer.Option(help="lung model file or run folder (default: shipped)")
    ] = None,
    overlays: Annotated[bool, typer.Option(help="also write overlay PNGs")] = True,
) -> None:
    """Segment the lungs of each film (the default command: `cxr segment IMAGE... --out DIR`).

    A film of a view the lung model does not support (a lateral film, for a model whose card
    lists frontal only) is skipped with a one-line reason: no mask is written for it."""
    from cxrkit.classifier.paths import require_films
    from cxrkit.errors import ImageReadError
    from cxrkit.io import read_image
    from cxrkit.progress import progress_lines
    from cxrkit.segment.infer import load_lung_model, segment_many
    from cxrkit.segment.overlay import save_mask_png, save_overlay_png
    from cxrkit.segment.views import skip_reason

    files = require_films(images)
    lung = load_lung_model(model)
    out.mkdir(parents=True, exist_ok=True)
    used: dict[str, int] = {}
    rows, n_bad, n_skip = [], 0, 0
    for path in progress_lines(files, what="segment", unit="films"):
        try:
            film, _meta = read_image(path)
        except ImageReadError as exc:
            n_bad += 1
            rows.append([str(path), "", "", "", exc.reason, "", ""])
            console.print(f"[yellow]skipped[/] {exc}", highlight=False)
            continue
        reason, view, _p_lateral = skip_reason(film, lung)
        if reason:
            n_skip += 1
            rows.append([str(path), "", "", "", "", view, reason])
            console.print(f"[yellow]skipped[/] {path}: {reason}", highlight=False)
            continue
        mask = segment_many([film], lung)[0]
        stem = path.stem
        used[stem] = used.get(stem, 0) + 1
        if used[stem] > 1:  # two films with one stem (different folders): keep both
            stem = f"{stem}_{used[stem]}"
        mask_path = save_mask_png(out / f"{stem}.png", mask)
        overlay_path = (
            save_overlay_png(out / "overlays" / f"{stem}.png", film, mask) if overlays else ""
        )
        rows.append(
            [str(path), str(mask_path), str(overlay_path), f"{mask.mean():.4f}", "", view, ""]
        )
    with (out / "masks.csv").open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "mask", "overlay", "lung_fraction", "error", "view", "skipped"])
        writer.writerows(rows)
    console.print(
        f"segmented {len(files) - n_bad - n_skip} film(s); {n_skip} skipped (view); "
        f"{n_bad} unreadable; wrote {out}"
    )
    if n_bad and n_bad == len(files):
        raise typer.Exit(2)


@app.command("train")
def train_cmd(
    data: Annotated[
        list[Path],
        typer.Option(help="labels.csv (or its folder) with path and mask; repeat for more sets"),
    ],
    out: Annotated[Path, typer.Option(help="run folder (model, split, log, metrics)")],
    weights: Annotated[
        Path | None, typer.Option(help="ImageNet weights for the encoder (local file)")
    ] = None,
    init: Annotated[
        Path | None, typer.Option(help="lung model file to continue training from")
    ] = None,
    encoder: Annotated[str, typer.Option(help="timm encoder registered in cxrkit.models")] = (
        "mobilenetv2_100"
    ),
    size: Annotated[int, typer.Option(help="square input side (multiple of 32)")] = 256,
    epochs: Annotated[int, typer.Option()] = 40,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    lr: Annotated[float, typer.Option()] = 1e-3,
    patience: Annotated[int, typer.Option(help="early stop after N epochs without val gain")] = 12,
    val: Annotated[
        float | None,
        typer.Option(help="validation fraction (by patient; default: the shared patient hash)"),
    ] = None,
    test: Annotated[
        float | None,
        typer.Option(help="test fraction (by patient; default: the shared patient hash)"),
    ] = None,
    views: Annotated[
        str, typer.Option(help="views to train on: frontal or frontal,lateral")
    ] = "frontal,lateral",
    split_file: Annotated[Path | None, typer.Option(help="reuse a split.csv")] = None,
    seed: Annotated[int, typer.Option()] = 0,
    max_minutes: Annotated[
        float | None, typer.Option(help="stop after this long, keeping the best epoch")
    ] = None,
    threads: Annotated[int | None, typer.Option(help="torch CPU threads")] = None,
    balance_sets: Annotated[
        bool,
        typer.Option(
            help="each mask set (annotator) weighs the same in training and in the val score"
        ),
    ] = False,
    loss: Annotated[
        str,
        typer.Option(
            help="bce_dice, or a boundary-aware loss: edge (border-weighted BCE + Dice) "
            "or lovasz (BCE + Lovasz hinge)"
        ),
    ] = "bce_dice",
    ema: Annotated[
        float | None,
        typer.Option(help="keep an exponential moving average of the weights (decay per step)"),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            help="continue a killed or interrupted run in --out after its last completed "
            "epoch (same options)"
        ),
    ] = False,
) -> None:
    """Train a lung U-Net on one or more mask sets; one patient-disjoint split over all.

    The run's state is saved after every epoch: Ctrl+C or a kill loses at most the epoch in
    progress, and the same command with --resume continues."""
    from cxrkit.segment.train import SegTrainConfig, train_lung_model

    cfg = SegTrainConfig(  # refuses bad options (size, epochs, encoder...) before any work
        encoder=encoder,
        weights=str(weights) if weights else None,
        init=str(init) if init else None,
        size=size,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        patience=patience,
        val_fraction=val,
        test_fraction=test,
        split_file=str(split_file) if split_file else None,
        seed=seed,
        max_minutes=max_minutes,
        threads=threads,
        train_views=tuple(v.strip() for v in views.split(",") if v.strip()),
        balance_sets=balance_sets,
        loss=loss,
        ema_decay=ema,
    )
    try:
        results = train_lung_model(data, out, cfg, resume=resume)
    except KeyboardInterrupt:
        console.print(
            f"[yellow]interrupted[/]: the last completed epoch is saved in {out / 'last.pt'}; "
            "run the same command with --resume to continue"
        )
        raise typer.Exit(130) from None
    for name, summary in results.items():
        _print_summary(name, summary)
    console.print(f"model: {out / 'model.safetensors'}")


@app.command("ensemble")
def ensemble_cmd(
    model: Annotated[
        list[Path],
        typer.Option(
            "--model", "--models", help="a lung model file or run folder; repeat for each member"
        ),
    ],
    data: Annotated[
        list[Path],
        typer.Option(help="labels.csv (or its folder) with path and mask; repeat for more sets"),
    ],
    split_file: Annotated[Path, typer.Option(help="the members' split.csv")],
    out: Annotated[Path, typer.Option(help="folder for the ensemble file, split and metrics")],
    dtype: Annotated[
        list[str] | None,
        typer.Option(
            "--dtype",
            "--dtypes",
            help="float16 or int8 storage per --model (default: float16)",
        ),
    ] = None,
) -> None:
    """Average lung U-Nets into one model file; threshold, clean-up and TTA chosen on val."""
    from cxrkit.segment.ensemble import build_lung_ensemble

    results = build_lung_ensemble(model, data, split_file, out, dtype)
    for name, summary in results.items():
        _print_summary(name, summary)
    console.print(f"model: {out / 'model.safetensors'}")


@app.command("evaluate")
def evaluate_cmd(
    data: Annotated[
        list[Path],
        typer.Option(help="labels.csv (or its folder) with path and mask; repeat for more sets"),
    ],
    model: Annotated[
        Path | None, typer.Argument(help="lung model file or run folder (default: shipped)")
    ] = None,
    split: Annotated[str | None, typer.Option(help="train | val | test")] = None,
    split_file: Annotated[
        Path | None, typer.Option(help="split.csv (default: the one beside the model)")
    ] = None,
    out: Annotated[Path, typer.Option(help="where metrics.json and per_film.csv go")] = Path(
        "segment-eval"
    ),
) -> None:
    """Dice, IoU and HD95 per film; per set, per view and overall; the worst films drawn."""
    from cxrkit.segment.evaluate import evaluate_lung_model

    summary = evaluate_lung_model(model, data, out, split=split, split_file=split_file)
    _print_summary(summary["split"], summary)
    console.print(f"wrote {out / 'metrics.json'}, {out / 'per_film.csv'} and {out / 'worst'}/")


def _print_summary(name: str, s: dict) -> None:
    console.print(
        f"{name}: n={s['n']}  Dice {s['dice']['mean']:.4f} (worst {s['dice']['min']:.4f})  "
        f"IoU {s['iou']['mean']:.4f}  "
        f"HD95 {s['hd95']['mean']:.1f} px (worst {s['hd95']['max']:.1f})"
    )
    from cxrkit.segment.report import annotator_lines, groups_table, no_reference_lines

    if "groups" in s:
        console.print(groups_table(name, s))
    for line in [*no_reference_lines(s), *annotator_lines(s)]:
        console.print(line, highlight=False)
    console.print(f"worst {len(s['worst'])} films by Dice:")
    for w in s["worst"]:
        where = f"{w['set']}/" if w.get("set") else ""
        console.print(f"  {w['dice']:.4f}  {where}{w['path']}", highlight=False)
