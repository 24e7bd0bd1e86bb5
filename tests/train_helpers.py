"""The `cxr train` command line of a tiny run (small_cnn, 32 px, 40 films) run as a process."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

CXR = Path(sys.executable).with_name("cxr")


def tiny_train_args(
    data: Path,
    run: Path,
    cache: Path,
    *,
    epochs: int,
    mode: str = "finetune",
    extra: Sequence[str] = (),
) -> list[str]:
    """`cxr train` on `data` into `run`: no bootstrap, no early stop before `epochs`."""
    return [
        str(CXR),
        "train",
        "--data",
        str(data),
        "--out",
        str(run),
        "--backbone",
        "small_cnn",
        "--mode",
        mode,
        "--image-size",
        "32",
        "--max-images",
        "40",
        "--epochs",
        str(epochs),
        "--batch-size",
        "8",
        "--num-workers",
        "0",
        "--cache-dir",
        str(cache),
        "--set",
        "n_bootstrap=0",
        "--set",
        f"early_stopping_patience={epochs}",
        "--no-progress",
        *extra,
    ]
