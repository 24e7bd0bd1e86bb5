"""`cxr pacs run`: predict new CR/DX films of a DICOMweb PACS and store SR + overlay back."""

from __future__ import annotations

import functools
import hashlib
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape

from cxrkit.cli import dicom_flags

console = Console(stderr=True)
app = typer.Typer(no_args_is_help=True, help="DICOMweb PACS round trip (QIDO / WADO / STOW).")


def default_state(url: str) -> Path:
    """One state file per server URL under ~/.cache/cxrkit/pacs/."""
    digest = hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:16]
    return Path.home() / ".cache" / "cxrkit" / "pacs" / f"{digest}.sqlite"


@app.command("run")
def run_cmd(
    model: Annotated[Path, typer.Argument(help="model file or run directory")],
    url: Annotated[
        str, typer.Option(help="DICOMweb root of the PACS, e.g. https://pacs/dicom-web")
    ],
    since: Annotated[
        str | None, typer.Option(help="only studies on or after this date (YYYY-MM-DD)")
    ] = None,
    modality: Annotated[str, typer.Option(help="modalities to query, comma-separated")] = "CR,DX",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="list the new films; fetch and store nothing")
    ] = False,
    watch: Annotated[
        float | None, typer.Option(help="poll again every SECONDS until Ctrl-C")
    ] = None,
    state: Annotated[
        Path | None,
        typer.Option(help="SQLite file of processed films (default: one per URL in ~/.cache)"),
    ] = None,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="try failed and quarantined films again, their tries reset (first pass only)",
        ),
    ] = False,
    max_tries: Annotated[
        int,
        typer.Option(
            min=1, help="tries of a film (across runs) before it is quarantined and skipped"
        ),
    ] = 3,
    allow_insecure: Annotated[
        bool,
        typer.Option(
            "--allow-insecure",
            help="send CXR_PACS_TOKEN over plain http:// to another host (else refused)",
        ),
    ] = False,
    decode_timeout: Annotated[
        float, typer.Option(min=0.1, help="seconds one film's decode may take (then killed)")
    ] = 20.0,
    decode_memory: Annotated[
        int, typer.Option(min=64, help="memory cap of the decode process, MB")
    ] = 2048,
    uid_root: Annotated[str | None, typer.Option(help=dicom_flags.UID_ROOT_HELP)] = None,
    batch_size: Annotated[
        int | None,
        typer.Option(hidden=True, help="ignored (films are processed one at a time)"),
    ] = None,
) -> None:
    """Query new films (QIDO-RS), fetch them (WADO-RS), predict, store SR + overlay (STOW-RS).

    Authentication from the environment: CXR_PACS_TOKEN (bearer), or CXR_PACS_USER and
    CXR_PACS_PASSWORD (basic); refused over plain http:// to another host unless
    --allow-insecure. Films are decoded in a separate, killable process. Research use
    only: the results are not a medical device's.
    """
    from cxrkit.cli.threads import passive_openmp_waits

    passive_openmp_waits()  # before torch loads
    from cxrkit.errors import CxrkitError
    from cxrkit.pacs import ProcessedStore, connect, parse_modalities, parse_since, run_once
    from cxrkit.pacs import run as pacs_run
    from cxrkit.pacs.client import PacsClient, cleartext_credentials

    if watch is not None and watch <= 0:
        raise CxrkitError(f"--watch {watch}: give a number of seconds > 0")
    since_date, modalities = parse_since(since), parse_modalities(modality)
    client = connect(url, allow_insecure=allow_insecure)
    cleartext = cleartext_credentials(url)
    if cleartext:
        console.print(
            f"[yellow]warning:[/] {cleartext} goes over plain http:// to another host, "
            "readable on the way: use https://"
        )
    dicom_flags.make_writer(None, uid_root, check_only=True)  # bad flags fail first

    def log(line: str) -> None:
        console.print(escape(line), highlight=False, soft_wrap=True)

    pacs = PacsClient(client, log=log)

    @functools.cache
    def get_writer():  # the model loads on the first new film (torch import: seconds)
        from cxrkit.classifier import Classifier

        writer = dicom_flags.make_writer(Classifier.load(model, device="cpu"), uid_root)
        console.print(f"model {writer.model_name} {writer.model_version}", highlight=False)
        return writer

    store = ProcessedStore(state or default_state(url))
    console.print(f"state {store.path}", highlight=False)
    pool = pacs_run.make_pool(timeout_s=decode_timeout, memory_mb=decode_memory)
    reset = retry_failed  # once: a watch loop must not reset a poison film's tries each pass
    try:
        while True:
            try:
                summary = run_once(
                    pacs,
                    get_writer,
                    store,
                    modalities=modalities,
                    since=since_date,
                    dry_run=dry_run,
                    retry_failed=reset,
                    max_tries=max_tries,
                    pool=pool,
                    log=log,
                )
                reset = False
                _print_summary(summary, dry_run)
            except CxrkitError as exc:
                if watch is None:
                    raise
                console.print(f"[yellow]warning:[/] {escape(str(exc))}; trying again later")
            if watch is None:
                break
            time.sleep(watch)
    except KeyboardInterrupt:
        console.print("stopped", highlight=False)
    finally:
        pool.close()
        store.close()


def _print_summary(summary, dry_run: bool) -> None:
    verb = "would process" if dry_run else "processed"
    again = f", {summary.retried} to try again" if summary.retried else ""
    todo = summary.new + summary.retried
    extra = "".join(
        f", {label} {n}"
        for label, n in (
            ("quarantined", len(summary.quarantined)),
            ("already stored", summary.already_stored),
            ("HTTP retries", summary.retries),
        )
        if n
    )
    console.print(
        f"{summary.found} {'film' if summary.found == 1 else 'films'} found, "
        f"{summary.new} new{again}; {verb} {summary.done if not dry_run else todo}, "
        f"failed {len(summary.failed)}, stored {summary.stored} object(s){extra} "
        f"in {summary.seconds:.1f} s",
        highlight=False,
    )
