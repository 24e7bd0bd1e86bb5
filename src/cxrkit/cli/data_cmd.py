"""`cxr data ...`: look at a dataset before training on it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

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
