"""The `cxr` command line: a thin layer that parses arguments, calls the API and prints."""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from cxrkit.errors import CxrkitError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="cxrkit: chest X-ray toolkit.")
err_console = Console(stderr=True)


def _register() -> None:
    """Attach each verb; heavy libraries are imported inside the commands, not here."""
    from cxrkit.cli import (
        data_cmd,
        explain_cmd,
        model_cmds,
        pacs_cmd,
        polarity_cmd,
        segment_cmd,
        serve_cmds,
        site_cmds,
    )

    app.add_typer(data_cmd.app, name="data")
    app.add_typer(segment_cmd.app, name="segment")
    app.add_typer(pacs_cmd.app, name="pacs")
    model_cmds.register(app)
    explain_cmd.register(app)
    polarity_cmd.register(app)
    serve_cmds.register(app)
    site_cmds.register(app)


_register()


def _is_abort(exc: BaseException) -> bool:
    """Ctrl-C / abort from click or from typer's vendored copy of click (typer >= 0.20)."""
    import click

    return isinstance(exc, (click.exceptions.Abort, getattr(typer, "Abort", click.Abort)))


def _is_usage_error(exc: BaseException) -> bool:
    """A ClickException (bad option, missing argument, unknown verb) of either click copy."""
    return callable(getattr(exc, "show", None)) and isinstance(getattr(exc, "exit_code", None), int)


def main() -> None:
    """Console-script entry: run the app, print cxrkit errors as one line, exit 2."""
    try:
        code = app(prog_name="cxr", standalone_mode=False)
    except CxrkitError as exc:
        from cxrkit.cli.flags import as_flags  # the library names arguments, we print flags

        err_console.print(
            f"[bold red]error:[/] {escape(as_flags(str(exc)))}", highlight=False, soft_wrap=True
        )
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        sys.exit(getattr(exc, "exit_code", getattr(exc, "code", 0)) or 0)
    except Exception as exc:  # usage errors and aborts, never as a traceback
        if _is_abort(exc):
            err_console.print("Aborted.", highlight=False)
            sys.exit(1)
        if _is_usage_error(exc):
            exc.show()  # type: ignore[attr-defined]
            sys.exit(exc.exit_code)  # type: ignore[attr-defined]
        raise
    # Without standalone mode click returns (not raises) the code of a `typer.Exit(code)`.
    if isinstance(code, int) and not isinstance(code, bool) and code:
        sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
