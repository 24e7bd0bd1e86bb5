"""`cxr polarity check | fix | train`: find and correct films shown inverted."""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

console = Console(stderr=True)
app = typer.Typer(no_args_is_help=True, help="Film polarity: positive (as read) or negative.")

ModelOpt = Annotated[
    Path | None, typer.Option("--model", help="polarity model file (default: the shipped one)")
]


def register(root: typer.Typer) -> None:
    """Attach the `polarity` sub-app to the top-level app."""
    root.add_typer(app, name="polarity")


@app.command("check")
def check_cmd(
    paths: Annotated[list[str], typer.Argument(help="films, folders or globs")],
    out: Annotated[Path | None, typer.Option(help="preds.csv (default: CSV to stdout)")] = None,
    model: ModelOpt = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 256,
    num_workers: Annotated[int, typer.Option(min=0, help="decoding processes")] = 2,
    cache_dir: Annotated[
        Path | None, typer.Option(help="decode cache: each film decoded once, read back after")
    ] = None,
) -> None:
    """One row per film: path,polarity,probability,view,p_lateral,not_cxr,error (positive or
    negative; frontal or lateral; not_cxr true when it may be no chest film; error when the
    film could not be read or judged, the other columns then empty)."""
    from cxrkit.classifier.paths import require_films
    from cxrkit.polarity import check_paths, load_polarity_model

    net = load_polarity_model(model)
    files = require_films(paths)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    handle = out.open("w", newline="") if out else sys.stdout
    n_neg = n_bad = n = n_lat = 0
    try:
        writer = csv.writer(handle)
        writer.writerow(
            ["path", "polarity", "probability", "view", "p_lateral", "not_cxr", "error"]
        )
        rows = check_paths(
            files, net, batch_size=batch_size, num_workers=num_workers, cache_dir=cache_dir
        )
        for row in rows:
            if "error" in row:
                n_bad += 1
                console.print(
                    f"[yellow]unreadable[/] {escape(row['path'])}: {escape(row['error'])}"
                )
                writer.writerow([row["path"], "", "", "", "", "", row["error"]])
                continue
            n += 1
            n_neg += row["polarity"] == "negative"
            flagged = row["not_cxr"] >= net.not_cxr_threshold
            if row["view"] == "lateral":
                n_lat += 1
                doubt = ", not recognised as a chest film: check it" if flagged else ""
                console.print(
                    f"[cyan]lateral view[/] (p={row['p_lateral']:.2f}){doubt} {escape(row['path'])}"
                )
            elif flagged:
                console.print(f"[yellow]not a chest film?[/] {escape(row['path'])}")
            writer.writerow(
                [
                    row["path"],
                    row["polarity"],
                    f"{row['probability']:.6f}",
                    row["view"],
                    f"{row['p_lateral']:.6f}",
                    str(bool(flagged)).lower(),
                    "",
                ]
            )
    finally:
        if out:
            handle.close()
    console.print(
        f"checked {n} film(s): {n_neg} negative (inverted), {n_lat} lateral; {n_bad} unreadable"
        + (f"; wrote {out}" if out else "")
    )


@app.command("fix")
def fix_cmd(
    paths: Annotated[list[str], typer.Argument(help="films, folders or globs")],
    out: Annotated[Path, typer.Option(help="folder for the corrected copies")],
    model: ModelOpt = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            min=0.0,
            max=1.0,
            help="invert films judged negative with at least this probability (default: the "
            "model's own `fix` threshold, the one behind predict's `inverted` flag)",
        ),
    ] = None,
) -> None:
    """Write corrected copies: inverted films re-inverted (PNG), the others copied unchanged."""
    from cxrkit.polarity import fix_paths, load_polarity_model

    files, names = _files_and_names(paths)
    if not files:
        console.print("no films found")
        raise typer.Exit(1)
    if any(out.resolve() in p.resolve().parents for p in files):
        console.print("[red]--out must not hold the input films[/]")
        raise typer.Exit(2)
    net = load_polarity_model(model)
    cut = net.fix_threshold if threshold is None else threshold
    rows = fix_paths(files, out, net, threshold=cut, names=names)
    out.mkdir(parents=True, exist_ok=True)  # even when no film could be written
    log = out / "polarity_fix.csv"
    with log.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["path", "polarity", "probability", "not_cxr", "action", "out", "error"])
        for r in rows:
            prob = f"{r['probability']:.6f}" if "probability" in r else ""
            flagged = str(r["not_cxr"] >= net.not_cxr_threshold).lower() if "not_cxr" in r else ""
            writer.writerow(
                [
                    r["path"],
                    r.get("polarity", ""),
                    prob,
                    flagged,
                    r.get("action", ""),
                    r.get("out", ""),
                    r.get("error", ""),
                ]
            )
    n_inv = sum(r.get("action") == "inverted" for r in rows)
    n_bad = sum("error" in r for r in rows)
    console.print(
        f"{len(rows) - n_bad} film(s) written, {n_inv} inverted; {n_bad} unreadable; {log}"
    )


def _files_and_names(args: list[str]) -> tuple[list[Path], list[str]]:
    """Films of each argument and their output names: a folder's films keep their layout
    inside it, a single file keeps its name; clashes get a numeric suffix."""
    from cxrkit.classifier.paths import expand_paths

    files, names, used = [], [], set()
    for arg in args:
        base = Path(arg) if Path(arg).is_dir() else None
        for path in expand_paths([arg]):
            name = path.relative_to(base).as_posix() if base else path.name
            stem, n = Path(name), 1
            while name.lower() in used:
                n += 1
                name = stem.with_name(f"{stem.stem}_{n}{stem.suffix}").as_posix()
            used.add(name.lower())
            files.append(path)
            names.append(name)
    return files, names


@app.command("train")
def train_cmd(
    data: Annotated[list[Path], typer.Argument(help="sets: labels.csv folders or image folders")],
    out: Annotated[Path, typer.Option(help="run folder (polarity.safetensors, metrics.json)")],
    exclude: Annotated[
        list[str] | None, typer.Option(help="file-name glob to leave out (repeatable)")
    ] = None,
    steps: Annotated[int, typer.Option(min=1, help="optimiser steps (batches of 256)")] = 1600,
    minutes: Annotated[
        float, typer.Option(min=0.01, help="stop after this long at the latest")
    ] = 9.0,
    seed: Annotated[int, typer.Option()] = 0,
    cache_dir: Annotated[Path | None, typer.Option(help="decoded-films cache")] = None,
    finetune_steps: Annotated[
        int, typer.Option(min=1, help="steps of the view stage (lateral films in)")
    ] = 300,
    base: Annotated[
        Path | None,
        typer.Option(help="base.safetensors of an earlier run on the same sets: view stage only"),
    ] = None,
) -> None:
    """Train the screening model (polarity, not-a-chest-film, frontal/lateral view) on films
    taken as correctly displayed; a labels.csv `view` of L marks a lateral film."""
    import json
    import logging

    from cxrkit.polarity import PolarityTrainConfig, train_polarity

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if base is not None and not base.is_file():
        raise typer.BadParameter(f"{base}: no such file", param_hint="--base")
    cfg = PolarityTrainConfig(
        steps=steps, max_minutes=minutes, seed=seed, finetune_steps=finetune_steps
    )
    try:
        metrics = train_polarity(
            data, out, cfg, exclude=exclude or [], cache_dir=cache_dir, base_model=base
        )
    except ValueError as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        raise typer.Exit(2) from exc
    keys = ("polarity", "guard_false_alarm", "view_false_alarm", "guard_detection")
    summary = {k: metrics[k]["all"] for k in keys}
    summary["lateral_detection"] = metrics.get("lateral_detection", {})
    console.print(json.dumps(summary))
