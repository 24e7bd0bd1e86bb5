"""The public face: `import cxrkit as cx` is cheap, every exported name resolves, errors
name arguments (not CLI flags), and the issue's acceptance snippet runs on shared data."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cxrkit as cx

SRC = Path(cx.__file__).resolve().parent
PUBLIC = [
    "read_image",
    "load_table",
    "TrainConfig",
    "TrainResult",
    "train",
    "Classifier",
    "create_model",
    "list_backbones",
    "segment_lungs",
    "load_lung_model",
    "check_polarity",
]


def _python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    return done.stdout.strip()


def test_import_is_cheap() -> None:
    """`import cxrkit` loads no torch, numpy or yaml: names load on first use."""
    out = _python(
        "import sys, cxrkit\n"
        "print(sorted(m for m in ('torch', 'numpy', 'yaml', 'timm') if m in sys.modules))"
    )
    assert out == "[]"


@pytest.mark.parametrize(
    "first", ["import cxrkit.train.config", "import cxrkit.train.runner", "import cxrkit"]
)
def test_train_is_the_function_whatever_was_imported_first(first: str) -> None:
    """`cxrkit.train` is the function even when the `cxrkit.train` subpackage loads first."""
    out = _python(
        f"{first}\nimport cxrkit as cx\nfrom cxrkit.train.runner import train\n"
        "print(cx.train is train, callable(cx.train))"
    )
    assert out == "True True"


def test_every_public_name_is_listed_and_resolves() -> None:
    assert set(PUBLIC) <= set(cx.__all__) <= set(dir(cx))
    for name in cx.__all__:
        assert getattr(cx, name) is not None, name
    assert cx.__version__
    assert "efficientnet_lite0" in cx.list_backbones()


def test_train_config_checks_itself() -> None:
    cfg = cx.TrainConfig(backbone="efficientnet_lite0", epochs=2, max_images=200)
    assert cfg.epochs == 2
    with pytest.raises(cx.CxrkitError, match="'epochs' must be int"):
        cx.TrainConfig(epochs="2")
    with pytest.raises(cx.CxrkitError, match="resize_mode must be one of"):
        cx.TrainConfig(resize_mode="stretch")
    with pytest.raises(cx.CxrkitError, match="threshold"):
        cx.TrainConfig(threshold_method="best")


def test_check_polarity_of_a_film_and_its_inverse(samples_dir: Path) -> None:
    path = samples_dir / "00000001_000.png"
    as_read = cx.check_polarity(path)
    film = cx.read_image(path)[0]
    inverted = cx.check_polarity(1.0 - film)
    assert as_read["polarity"] == "positive" and inverted["polarity"] == "negative"
    assert cx.check_polarity((film * 255).astype(np.uint8))["polarity"] == "positive"
    film[0, 0] = np.nan
    with pytest.raises(cx.ImageReadError, match="non-finite"):
        cx.check_polarity(film)  # a NaN film is an error, never a label


_FLAG = re.compile(r"(?<![\w-])--[a-z][a-z0-9-]*")


def _flag_messages(path: Path) -> list[str]:
    """String constants with a `--flag` inside `raise` statements."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.Raise):
            continue
        for sub in ast.walk(node):
            if isinstance(sub, ast.Constant) and isinstance(sub.value, str):
                if _FLAG.search(sub.value):
                    found.append(f"{path.relative_to(SRC)}:{node.lineno}: {sub.value!r}")
    return found


def test_library_errors_name_arguments_not_cli_flags() -> None:
    """Outside cxrkit.cli, raised errors speak of arguments (`weights=PATH`), not flags."""
    bad = [m for p in sorted(SRC.rglob("*.py")) if "cli" not in p.parts for m in _flag_messages(p)]
    assert not bad, "\n".join(bad)


def test_cli_prints_library_arguments_as_flags() -> None:
    from cxrkit.cli.flags import as_flags

    message = "pass weights=PATH, weights='hub' or random_init=True; `split_file` needs `split`"
    assert as_flags(message) == (
        "pass --weights PATH, --weights 'hub' or --random-init; --split-file needs --split"
    )
    assert as_flags("nothing to adapt: bn=False and prior=False") == (
        "nothing to adapt: --no-bn and --no-prior"
    )
    # not an option of any command, or a user's own quoted input: left alone
    assert as_flags("x=1 `frobnicate` 'lr=abc'") == "x=1 `frobnicate` 'lr=abc'"
