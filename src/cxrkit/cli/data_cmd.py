"""`cxr data ...`: look at a dataset before training on it."""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

if TYPE_CHECKING:  # pragma: no cover
    from cxrkit.io.info import FileInfo

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Inspect datasets.")

_LISTED = 5


@app.command("summary")
def summary(
    dataset: Path = typer.Argument(
        ..., help="labels.csv, a folder holding one, or a folder with one subfolder per class."
    ),
    label_column: str = typer.Option(
        "label", "--label-column", "-l", help="CSV column with the labels ('a|b' = multi-label)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
    check_files: bool = typer.Option(
        True,
        "--check-files/--no-check-files",
        help="Read every file (sizes, unreadable files, duplicates); off = labels only.",
    ),
) -> None:
    """Class counts, patients, image sizes, unreadable files, duplicates and imbalance."""
    from cxrkit.data.summary import summarize

    result = summarize(dataset, label_column=label_column, check_files=check_files)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
        return
    print_summary(result, Console())


@app.command("info")
def info(
    files: list[Path] = typer.Argument(..., help="Films to inspect (PNG, JPEG or DICOM)."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list, one object per file."),
    max_pixels: int | None = typer.Option(
        None,
        "--max-pixels",
        help="Refuse films whose header declares more pixels (default 100,000,000).",
    ),
) -> None:
    """Format, bit depth, size, photometric, spacing, inversion and modality of each film.

    An unreadable file gets one error line on stderr (file and reason); the others are
    still listed. Exits with status 2 when any file could not be read.
    """
    from cxrkit.io import DEFAULT_MAX_PIXELS, inspect_file

    limit = DEFAULT_MAX_PIXELS if max_pixels is None else max_pixels
    results = []
    for path in files:
        with warnings.catch_warnings():  # decoder chatter would break the one-line contract
            warnings.simplefilter("ignore")
            results.append(inspect_file(path, max_pixels=limit))
    if as_json:
        typer.echo(json.dumps([r.to_dict() for r in results], indent=2))
    elif any(r.ok for r in results):
        print_info([r for r in results if r.ok], _wide_when_piped(Console()))
    failed = [r for r in results if not r.ok]
    if failed:
        err = Console(stderr=True, soft_wrap=True, highlight=False)
        for r in failed:
            err.print(f"[bold red]error:[/] {escape(r.message)}")
        raise typer.Exit(2)


def print_info(results: list[FileInfo], console: Console) -> None:
    """Render readable films' ImageMeta as one rich table, a row per file."""
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    table.add_column("file", overflow="fold")
    for name in ("format", "bits", "h x w", "photometric", "spacing mm", "inverted", "modality"):
        table.add_column(name, overflow="fold")  # fold, never hide, in a narrow terminal
    for r in results:
        m = r.meta
        assert m is not None
        spacing = f"{m.pixel_spacing[0]:g}x{m.pixel_spacing[1]:g}" if m.pixel_spacing else "-"
        table.add_row(
            escape(r.path),
            m.format,
            str(m.bit_depth),
            f"{m.original_size[0]}x{m.original_size[1]}",
            escape(m.photometric),
            spacing,
            "yes" if m.inverted else "no",
            escape(m.modality or "-"),
        )
    console.print(table)


def _wide_when_piped(console: Console) -> Console:
    """Piped or redirected output has no width; give tables room instead of rich's 80."""
    if not console.is_terminal and not os.environ.get("COLUMNS"):
        console.width = 200
    return console


def print_summary(s: dict[str, Any], console: Console) -> None:
    """Render a `summarize` result as rich tables."""
    console.print(
        f"[bold]{s['root']}[/]  task [cyan]{s['task']}[/], column [cyan]{s['label_column']}[/]",
        highlight=False,
    )
    classes = Table(title="Classes" if s["task"] != "multilabel" else "Findings (per image)")
    classes.add_column("class" if s["task"] != "multilabel" else "finding")
    classes.add_column("images", justify="right")
    classes.add_column("%", justify="right")
    for c in s["classes"]:
        classes.add_row(c["name"], str(c["count"]), f"{c['percent']:.1f}")
    if s["no_finding"] is not None:
        pct = 100.0 * s["no_finding"] / s["n_images"] if s["n_images"] else 0.0
        classes.add_row("[dim](no finding)[/]", str(s["no_finding"]), f"{pct:.1f}")
    console.print(classes)

    facts = Table(show_header=False, title="Dataset")
    facts.add_column(style="bold")
    facts.add_column()
    facts.add_row("images", str(s["n_images"]))
    facts.add_row(
        "patients", f"{s['n_patients']} (at most {s['max_images_per_patient']} images each)"
    )
    ratio = s["imbalance_ratio"]
    facts.add_row("imbalance (max/min)", f"{ratio:.2f}" if ratio is not None else "-")
    sizes = s["sizes"]
    if sizes["distinct"] == 1:
        (h, w) = sizes["most_common"][0]["size"]
        facts.add_row("sizes (h x w)", f"all {h}x{w}")
    elif sizes["checked"]:
        common = ", ".join(
            f"{e['size'][0]}x{e['size'][1]} ({e['count']})" for e in sizes["most_common"]
        )
        facts.add_row(
            "sizes (h x w)",
            f"{sizes['distinct']} distinct, most common {common}; "
            f"height {sizes['height'][0]}-{sizes['height'][1]}, "
            f"width {sizes['width'][0]}-{sizes['width'][1]}",
        )
    facts.add_row("formats", ", ".join(f"{k} {v}" for k, v in s["formats"].items()) or "-")
    if s["files_checked"]:
        facts.add_row("unreadable", str(len(s["unreadable"])))
        dups = s["duplicates"]
        text = "0"
        if dups:
            files = sum(len(g["paths"]) for g in dups)
            cross = sum(g["patients_differ"] for g in dups)
            conflict = sum(g["labels_differ"] for g in dups)
            text = (
                f"{len(dups)} groups ({files} files); {cross} across patients, "
                f"{conflict} with different labels"
            )
        facts.add_row("exact duplicates", text)
    else:
        facts.add_row("files", "not checked (--no-check-files)")
    facts.add_row("skipped rows", str(s["skipped"]["count"]))
    console.print(facts)

    if s["files_checked"] and s["unreadable"]:
        console.print("[bold red]unreadable files[/]")
        for u in s["unreadable"][:_LISTED]:
            console.print(f"  {u['path']}: {u['reason']}", highlight=False)
        _more(console, len(s["unreadable"]))
    if s["files_checked"] and s["duplicates"]:
        console.print("[bold yellow]duplicate groups[/]")
        for g in s["duplicates"][:_LISTED]:
            console.print("  " + " = ".join(g["paths"]), highlight=False)
        _more(console, len(s["duplicates"]))
    if s["skipped"]["count"]:
        console.print(f"[bold yellow]skipped rows[/] ({s['skipped']['count']})")
        for r in s["skipped"]["first"][:_LISTED]:
            console.print(f"  {r['path'] or '<empty path>'}: {r['reason']}", highlight=False)
        _more(console, s["skipped"]["count"], hint="")


def _more(console: Console, total: int, hint: str = " (use --json for all)") -> None:
    if total > _LISTED:
        console.print(f"  ... and {total - _LISTED} more{hint}")


@app.command("polarity-set")
def polarity_set(
    sources: list[Path] = typer.Argument(
        ..., help="Datasets to draw films from (labels.csv, a folder holding one, class folders)."
    ),
    out: Path = typer.Option(..., "--out", help="Folder for images/ and labels.csv."),
    size: int = typer.Option(128, "--size", help="Side of the square PNGs written."),
    per_source: int | None = typer.Option(
        None, "--per-source", help="Films drawn at random from each source (default: all)."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed for the draw and the inversions."),
    label_column: str = typer.Option(
        "label", "--label-column", "-l", help="Column that must be filled for a row to be used."
    ),
    resize_mode: str = typer.Option("squash", "--resize-mode", help="squash | pad | crop"),
    overwrite: bool = typer.Option(False, "--overwrite", help="Write into a non-empty --out."),
) -> None:
    """Build a film-polarity set: films as read (positive) and inverted (negative), half each.

    Train the polarity preset on it: cxr train --config configs/polarity_small_cnn.yaml
    --data OUT --out RUN.
    """
    from cxrkit.data.polarity_set import make_polarity_set

    s = make_polarity_set(
        sources,
        out,
        size=size,
        per_source=per_source,
        seed=seed,
        label_column=label_column,
        resize_mode=resize_mode,
        overwrite=overwrite,
        show_progress=True,
    )
    console = Console(stderr=True, highlight=False, soft_wrap=True)
    for name, info in s["sources"].items():
        console.print(
            f"{escape(name)}: {info['positive']} positive, {info['negative']} negative "
            f"({escape(info['data'])})"
        )
    for item in s["skipped"]:
        console.print(f"[bold yellow]skipped:[/] {escape(item['path'])}: {escape(item['reason'])}")
    console.print(
        f"wrote {s['n_films']} films ({s['size']} px) and labels.csv to {escape(s['out'])}"
    )


def _register_public_sets() -> None:
    """`cxr data sets | prepare | download | convert | merge` live in datasets_cmd."""
    from cxrkit.cli import datasets_cmd

    datasets_cmd.register(app)


_register_public_sets()
