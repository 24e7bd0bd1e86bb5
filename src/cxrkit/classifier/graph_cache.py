"""Exported ONNX graphs of a model file, cached so `cxr predict --runtime onnx` exports once.

The graph is kept beside the model file in `.cxrkit-graphs/` (or, when that folder cannot
be written, under `default_cache_dir()/graphs/`) as `STEM.SHA16.onnx`, where SHA16 starts
the sha256 of the model file's bytes: a changed model file has another key, so it never
runs a stale graph; the older graphs of that stem are removed when a new one is written.
The graph's own card records the same sha256 (`export.source_sha256`), checked on use.
Graphs are written atomically (a temp file renamed into place).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cxrkit.data.cache import default_cache_dir, file_sha256

GRAPH_DIR = ".cxrkit-graphs"


def graph_folders(model_file: Path) -> list[Path]:
    """Where the graphs of `model_file` may live, in the order they are tried."""
    return [model_file.parent / GRAPH_DIR, default_cache_dir() / "graphs"]


def cached_graph(
    model_file: Path,
    export: Callable[[Path, str], Path],
    sha256: str | None = None,
    *,
    beside: bool = True,
) -> tuple[Path, str]:
    """(the graph of `model_file`, the model's sha256): the cached one when its key matches,
    else `export(target, sha256)` writes it (atomically) into the first writable folder.
    `beside=False` uses the cache folder only (a model shipped inside the package)."""
    sha = sha256 or file_sha256(model_file)
    name = f"{model_file.stem}.{sha[:16]}.onnx"
    folders = graph_folders(model_file)[0 if beside else 1 :]
    for folder in folders:
        if (folder / name).is_file():
            return folder / name, sha
    for folder in folders:
        if not _writable(folder):  # a read-only model folder: the cache folder next
            continue
        path = export(folder / name, sha)
        if folder.name == GRAPH_DIR:  # beside the model: its older graphs go
            for old in folder.glob(f"{model_file.stem}.*.onnx"):
                if old.name != name:
                    old.unlink(missing_ok=True)
        return path, sha
    raise OSError(f"no writable folder for the ONNX graph of {model_file}: tried {folders}")


def _writable(folder: Path) -> bool:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(folder, os.W_OK)


def export_record(
    source: Path | None, sha256: str | None = None, *, opset: int = 17
) -> dict[str, Any]:
    """The card's `export` record of a graph made from the model file `source`: its name
    and the sha256 of its bytes (so a graph is never paired with a changed model file)."""
    record: dict[str, Any] = {"source": None if source is None else source.name, "opset": opset}
    if source is not None and source.suffix.lower() == ".safetensors":
        record["source_sha256"] = sha256 or file_sha256(source)
    return record
