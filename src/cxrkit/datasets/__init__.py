"""Public chest X-ray sets: adapters to cxrkit's labels.csv, a resumable downloader, shards.

`prepare_dataset("nih", root, out)` writes a labels.csv that `cxr train` reads as is;
`list_datasets()` says what each set gives; `download_dataset` fetches the sets with an
open HTTP download; `convert_dataset` writes resized copies or WebDataset shards.
"""

from __future__ import annotations

from pathlib import Path

from cxrkit.datasets.common import PrepareOptions, check_options, write_prepared
from cxrkit.datasets.registry import DatasetSpec, RemoteFile, get_dataset, list_datasets

__all__ = [
    "DatasetSpec",
    "PrepareOptions",
    "RemoteFile",
    "get_dataset",
    "list_datasets",
    "prepare_dataset",
]


def prepare_dataset(
    name: str,
    root: str | Path,
    out: str | Path,
    views: list[str] | None = None,
    uncertain: str = "ignore",
    check_files: bool = True,
    task: str | None = None,
    readers: str = "majority",
) -> dict:
    """Turn set `name` under `root` into `out`/labels.csv (+ boxes.csv, masks/, dataset.json).

    `views` keeps only those views (e.g. ["PA", "AP"]); `uncertain` is ignore (masked from
    the loss), zeros or ones; `check_files=False` keeps rows whose image is not there yet.
    Returns the summary also written to dataset.json.
    """
    spec = get_dataset(name)
    options = PrepareOptions(
        root=Path(root).expanduser().absolute(),
        out=Path(out).expanduser().absolute(),
        views=frozenset(v.strip().upper() for v in views if v.strip()) if views else None,
        uncertain=uncertain,
        check_files=check_files,
        task=task,
        readers=readers,
    )
    check_options(options)
    prepared = spec.prepare(options)
    return write_prepared(prepared, options, spec.name)
