"""The `cxr` command line: a thin layer that parses arguments, calls the API and prints."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from cxrkit.errors import CxrkitError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="cxrkit: chest X-ray toolkit.")
err_console = Console(stderr=True)


def _register() -> None:
    """Attach each verb's sub-app; import lazily-heavy modules inside commands, not here."""
    from cxrkit.cli import data_cmd

    app.add_typer(data_cmd.app, name="data")
    try:
        from cxrkit.cli import model_cmds
    except ImportError:  # pragma: no cover - during bootstrap only
        return
    model_cmds.register(app)


_register()


def main() -> None:
    """Console-script entry: run the app, print cxrkit errors as one line, exit 2."""
    try:
        app(standalone_mode=False)
    except CxrkitError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = getattr(exc, "exit_code", getattr(exc, "code", 0))
        sys.exit(code or 0)
    except Exception as exc:  # click usage errors and friends
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        if isinstance(exc, click.exceptions.Abort):
            sys.exit(1)
        raise


if __name__ == "__main__":  # pragma: no cover
    main()
