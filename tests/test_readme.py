"""The README's `cxr data ...` quick-start commands run as written against the shared data."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer

from cxrkit.cli.app import app

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"
_FENCE = re.compile(r"^```bash\n(.*?)^```", re.MULTILINE | re.DOTALL)


def readme_commands(prefix: str = "cxr data") -> list[str]:
    """Lines of the README's ```bash blocks that start with `prefix` (continuations joined)."""
    lines: list[str] = []
    for block in _FENCE.findall(README.read_text(encoding="utf-8")):
        lines.extend(block.replace("\\\n", " ").splitlines())
    return [line.strip() for line in lines if line.strip().startswith(prefix + " ")]


def to_argv(command: str, shared: Path) -> list[str]:
    """Shell words of a README line: `cxr` -> this Python, ../shared -> `shared`, globs."""
    words = shlex.split(command, comments=True)
    argv = [sys.executable, "-m", "cxrkit"]
    for word in words[1:]:
        if word.startswith("../shared/"):
            word = str(shared / word.removeprefix("../shared/"))
        matches = sorted(glob.glob(word)) if any(ch in word for ch in "*?[") else []
        argv.extend(matches or [word])
    return argv


def test_readme_has_the_data_commands() -> None:
    commands = readme_commands()
    assert any(c.startswith("cxr data summary ") for c in commands), commands
    assert any(c.startswith("cxr data info ") for c in commands), commands


@pytest.mark.parametrize("command", readme_commands())
def test_readme_data_command_runs(command: str, shared_data: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    run = subprocess.run(
        to_argv(command, shared_data.parent),
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert run.returncode == 0, f"{command}\n{run.stderr}"
    assert run.stderr.strip() == "", run.stderr
    assert run.stdout.strip(), f"{command} printed nothing"
    if "--json" in command.split():
        json.loads(run.stdout)


@pytest.mark.parametrize("command", readme_commands("cxr"))
def test_readme_commands_parse(command: str) -> None:
    """Every `cxr ...` line (train, evaluate, predict too) uses real verbs and options."""
    command_obj: Any = typer.main.get_command(app)
    args = shlex.split(command, comments=True)[1:]
    name = "cxr"
    while hasattr(command_obj, "commands"):  # a group (click's or typer's vendored click)
        name = args.pop(0)
        assert name in command_obj.commands, f"{command}: no verb {name!r}"
        command_obj = command_obj.commands[name]
    command_obj.make_context(name, args)  # raises on an unknown option or a missing argument


def _all_options(command: Any) -> set[str]:
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    for sub in getattr(command, "commands", {}).values():
        options |= _all_options(sub)
    return options


def test_readme_mentions_only_real_options() -> None:
    """Every `--option` the README names is an option of some `cxr` command."""
    known = _all_options(typer.main.get_command(app)) | {"--help"}
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", README.read_text(encoding="utf-8")))
    assert named <= known, sorted(named - known)


def test_readme_lists_every_backbone() -> None:
    """The README's backbone list matches the `@register_backbone("name", ...)` calls.

    Read from the source rather than `list_backbones()`, which would import torch and timm.
    """
    registered = sorted(
        name
        for path in (REPO / "src" / "cxrkit").rglob("*.py")
        for name in re.findall(r'@register_backbone\(\s*"(\w+)"', path.read_text("utf-8"))
    )
    text = README.read_text(encoding="utf-8")
    line = re.search(r"^Backbones: (.*?)\. ", text, re.MULTILINE | re.DOTALL)
    assert line is not None, "README lost its 'Backbones: ...' list"
    assert registered, "no @register_backbone calls found"
    assert sorted(re.findall(r"`(\w+)`", line.group(1))) == registered


def test_readme_first_screen() -> None:
    """What cxrkit is, the two commands, a five-line quick start, then the headline results."""
    text = README.read_text(encoding="utf-8")
    headings = re.findall(r"^## (.+)$", text, re.MULTILINE)
    assert headings[:4] == ["Two commands", "Five-line quick start", "Measured results", "Install"]
    quick = text.split("## Five-line quick start\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```(\w+)\n(.*?)^```", quick, re.MULTILINE | re.DOTALL)
    lines = {lang: [ln for ln in body.splitlines() if ln.strip()] for lang, body in blocks}
    assert sum(map(len, lines.values())) == 5, lines
    assert all(ln.startswith("cxr ") for ln in lines["bash"])
    assert lines["python"][0] == "import cxrkit as cx"
    results = text.split("## Measured results\n", 1)[1].split("\n## ", 1)[0]
    assert "<!-- results:begin -->" in results and "(docs/RESULTS.md)" in results
