"""Library errors name arguments (`weights=PATH`, `` `split` ``); the CLI prints its flags."""

from __future__ import annotations

import functools
import re

# `name=VALUE`, `name=True` / `name=False`, or `` `name` `` as library messages write an
# argument; text inside quotes (a user's own input, shown with repr) is left alone.
_ARGUMENT = re.compile(
    r"(?<![\w.='\"-])([a-z][a-z0-9]*(?:_[a-z0-9]+)*)=(True\b|False\b)?"
    r"|`([a-z][a-z0-9]*(?:_[a-z0-9]+)*)`"
)


@functools.lru_cache(maxsize=1)
def _cli_options() -> frozenset[str]:
    """Every `--option` of every `cxr` command."""
    import typer

    from cxrkit.cli.app import app

    def walk(command) -> set[str]:
        found = {o for p in command.params for o in (*p.opts, *p.secondary_opts)}
        for sub in getattr(command, "commands", {}).values():
            found |= walk(sub)
        return found

    return frozenset(walk(typer.main.get_command(app)))


def as_flags(message: str) -> str:
    """Spell the arguments of a library message as `cxr` flags where such a flag exists.

    `weights=PATH` -> `--weights PATH`, `random_init=True` -> `--random-init`,
    `bn=False` -> `--no-bn`, `` `split_file` `` -> `--split-file`; other text, and
    names that are no `cxr` option, stay as they are.
    """

    def swap(match: re.Match[str]) -> str:
        name, boolean, quoted = match.groups()
        dashed = (name or quoted).replace("_", "-")
        flag = f"--no-{dashed}" if boolean == "False" else f"--{dashed}"
        if flag not in _cli_options():
            return match.group(0)
        return flag if (quoted or boolean) else flag + " "

    return _ARGUMENT.sub(swap, message)
