"""`cxr data sets | prepare | download | convert | merge`: public chest X-ray sets."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _err() -> Console:
    return Console(stderr=True, highlight=False, soft_wrap=True)


def sets(as_json: bool = typer.Option(False, "--json", help="Print the list as JSON.")) -> None:
    """The public sets cxrkit knows: licence, citation, labels, whether it downloads."""
    from cxrkit.datasets import list_datasets

    specs = list_datasets()
    if as_json:
        rows = [
            {
                "name": s.name,
                "title": s.title,
                "licence": s.licence,
                "citation": s.citation,
                "labels": s.labels,
                "task": s.task,
                "downloads": s.downloadable,
                "layout": s.layout,
                "access": s.access,
                "aliases": list(s.aliases),
            }
            for s in specs
        ]
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False)
    for col in ("name", "set", "labels", "licence", "citation", "download"):
        table.add_column(col, overflow="fold")
    for s in specs:
        table.add_row(
            s.name,
            escape(s.title),
            escape(s.labels),
            escape(s.licence),
            escape(s.citation),
            "yes" if s.downloadable else "registration",
        )
    Console(width=200 if not Console().is_terminal else None).print(table)


def prepare(
    name: str = typer.Argument(..., help="Set name (see `cxr data sets`)."),
    root: Path = typer.Option(..., "--root", help="Folder holding the set as its owners ship it."),
    out: Path = typer.Option(..., "--out", help="Folder for labels.csv, boxes.csv, masks/."),
    views: str | None = typer.Option(
        None, "--views", help="Keep only these views, comma-separated (e.g. PA,AP)."
    ),
    uncertain: str = typer.Option(
        "ignore",
        "--uncertain",
        help="Uncertain findings: ignore (kept, masked from the loss) | zeros | ones.",
    ),
    check_files: bool = typer.Option(
        True, "--check-files/--no-check-files", help="Drop rows whose image is not under --root."
    ),
    task: str | None = typer.Option(
        None, "--task", help="A set's preset task (openi: findings | nodule-vs-normal)."
    ),
    readers: str = typer.Option(
        "majority", "--readers", help="VinDr readers: majority (2 of 3) | any (1 of 3)."
    ),
) -> None:
    """Write a cxrkit labels.csv (+ boxes.csv, masks) from a public set; `cxr train` reads it."""
    from cxrkit.datasets import prepare_dataset

    info = prepare_dataset(
        name,
        root,
        out,
        views=views.split(",") if views else None,
        uncertain=uncertain,
        check_files=check_files,
        task=task,
        readers=readers,
    )
    err = _err()
    err.print(
        f"{escape(info['name'])}: {info['films']} films of {info['patients']} patients, "
        f"{info['uncertain_films']} with uncertain findings, {info['boxes']} boxes -> "
        f"{escape(str(out))}/labels.csv"
    )
    dropped = info["dropped"]
    if dropped["view"] or dropped["missing_file"]:
        err.print(
            f"dropped {dropped['view']} by --views, {dropped['missing_file']} with no image file"
        )
    for note in info["notes"]:
        err.print(f"[dim]note:[/] {escape(note)}")


def download(
    name: str = typer.Argument(..., help="Set name (see `cxr data sets`)."),
    dest: Path = typer.Option(..., "--dest", help="Folder for the downloads (resumable)."),
    base_url: str | None = typer.Option(
        None, "--base-url", help="Fetch every file of the set from this mirror instead."
    ),
    workers: int = typer.Option(2, "--workers", help="Files downloaded at once."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Only list the files and URLs."),
    search: bool = typer.Option(
        False, "--search", help="openi: Xvision's search-API query (x/xg films) instead."
    ),
    limit: int | None = typer.Option(None, "--limit", help="With --search: at most N films."),
) -> None:
    """Download a set with an open HTTP download; resumes partial files, checks sha256."""
    from cxrkit.datasets.download import download_dataset, download_files, openi_search_files

    err = _err()
    if search:
        if name.lower() not in ("openi", "nlmcxr"):
            raise typer.BadParameter("--search is only for openi", param_hint="--search")
        files = openi_search_files(dest, base_url=base_url, limit=limit)
        if dry_run:
            for remote, url in files:
                typer.echo(f"{remote.name}\t{url}")
            return
        results = download_files(files, dest, workers=workers, extract=False)
    else:
        results = download_dataset(name, dest, base_url=base_url, workers=workers, dry_run=dry_run)
    for r in results:
        if r.status == "planned":
            typer.echo(f"{r.name}\t{r.url}\t{r.check}")
        else:
            err.print(f"{r.status:>10}  {escape(r.name)}  {r.fetched:,} bytes  sha256 {r.sha256}")


def convert(
    dataset: Path = typer.Argument(..., help="A prepared set (folder with labels.csv)."),
    out: Path = typer.Option(..., "--out", help="Output folder."),
    size: int = typer.Option(512, "--size", help="Longer side of the written films, px."),
    fmt: str = typer.Option("png8", "--format", help="png8 | png16 | webdataset"),
    shard_size: str = typer.Option("1GB", "--shard-size", help="WebDataset shard size."),
    workers: int = typer.Option(2, "--workers", help="Films decoded at once."),
    seed: int = typer.Option(
        0, "--seed", help="WebDataset: seed of the shuffled order films are sharded in."
    ),
) -> None:
    """Resized PNG copies plus labels.csv, or WebDataset tar shards (films in a seeded
    shuffled order, so no shard holds one class); reruns resume."""
    from cxrkit.datasets.convert import convert_dataset

    s = convert_dataset(
        dataset, out, size=size, fmt=fmt, shard_size=shard_size, workers=workers, seed=seed
    )
    _err().print(
        f"{s['written']} films written, {s['already_done']} already there, "
        f"{s['unreadable']} unreadable, {s['shards']} shards ({s['format']}) -> {escape(str(out))}"
    )


def merge(
    sources: list[Path] = typer.Argument(..., help="Prepared sets to merge (two or more)."),
    out: Path = typer.Option(..., "--out", help="Folder for the merged labels.csv."),
) -> None:
    """One labels.csv from several prepared sets; unlabelled findings become uncertain."""
    from cxrkit.datasets.merge import merge_datasets

    info = merge_datasets(sources, out)
    _err().print(
        f"{info['films']} films of {info['patients']} patients from "
        f"{', '.join(map(escape, info['sources']))} -> {escape(str(out))}/labels.csv"
    )


def register(app: typer.Typer) -> None:
    """Attach the public-set verbs to the `cxr data` group."""
    app.command("sets")(sets)
    app.command("prepare")(prepare)
    app.command("download")(download)
    app.command("convert")(convert)
    app.command("merge")(merge)
