"""Site tests: a tiny random-init model file (small_cnn at 32 px) and an in-process `cxr` runner."""

from __future__ import annotations

import hashlib
import io
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any
from unittest import mock

import torch

from cxrkit.cli.app import main
from cxrkit.models import create_model
from cxrkit.models.model_file import save_model_file

EXTRA_TENSOR = "ood.site_test"  # a non-network tensor, as the OOD reference stores


def tiny_model_file(path: Path, seed: int = 0, **card_extra: Any) -> Path:
    """Write a small_cnn binary normal/pneumonia model file at `path`; returns the path.

    Where model files may hold non-network tensors (`EXTRA_PREFIXES`), one such tensor
    (`ood.site_test`) is added, so tests see that site tools carry it over unchanged.
    """
    from cxrkit.models import model_file

    torch.manual_seed(seed)
    model = create_model("small_cnn", num_classes=2, random_init=True, head_hidden=None)
    card: dict[str, Any] = {
        "architecture": "small_cnn",
        "model_kwargs": {"head_hidden": None, "dropout": 0.0},
        "task": "binary",
        "class_names": ["normal", "pneumonia"],
        "label_column": "label",
        "preprocessing": {"size": 32, "resize_mode": "squash", "crop": None},
        "thresholds": [0.5],
        "threshold_method": "youden",
        "training": {"mode": "features", "config": {"balance": "loss"}},
        **card_extra,
    }
    if EXTRA_TENSOR.split(".")[0] + "." in getattr(model_file, "EXTRA_PREFIXES", ()):
        return save_model_file(
            path, model, card, extra_tensors={EXTRA_TENSOR: torch.arange(6.0).view(2, 3)}
        )
    return save_model_file(path, model, card)


def to_refit(root: Path) -> dict[str, Any]:
    """A tiny model file to refit in `root`, its digest, and the new file a site verb writes."""
    src = tiny_model_file(root / "model.safetensors")
    return {"src": src, "digest": sha256(src), "out": root / "site" / "model.safetensors"}


def run_cxr(*args: str | Path) -> tuple[int, str, str]:
    """Run `cxr ARGS...` through the console entry point; returns (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["cxr", *map(str, args)]
    with mock.patch.object(sys, "argv", argv), redirect_stdout(out), redirect_stderr(err):
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def assert_one_line_error(code: int, err: str, *words: str) -> None:
    """Exit code 2 and a single `error: ...` line on stderr naming `words`."""
    assert code == 2, err
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    for word in words:
        assert word.lower() in lines[0].lower(), (word, err)


def sha256(path: Path) -> str:
    """Hex digest of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tensors(path: Path) -> dict[str, torch.Tensor]:
    """Every tensor stored in a safetensors file."""
    from safetensors.torch import load_file

    return load_file(str(path))
