"""Registry of public chest X-ray sets: one `DatasetSpec` per name, filled by `register_dataset`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cxrkit.errors import DatasetError

if TYPE_CHECKING:  # pragma: no cover
    from cxrkit.datasets.common import Prepared, PrepareOptions


@dataclass(frozen=True)
class RemoteFile:
    """One file a set's owner publishes: where, under what name, and its sha256 if known."""

    name: str
    url: str
    sha256: str | None = None
    extract: bool = True


@dataclass(frozen=True)
class DatasetSpec:
    """What cxrkit knows about one public set, without reading it.

    `prepare(options)` turns the set's own files under `options.root` into a `Prepared`
    table; `files` lists the open HTTP downloads (empty for sets behind a registration,
    whose `access` says how to obtain them); `layout` describes what `--root` must hold.
    """

    name: str
    title: str
    licence: str
    citation: str
    labels: str
    task: str
    prepare: Callable[[PrepareOptions], Prepared]
    layout: str
    files: tuple[RemoteFile, ...] = ()
    access: str = ""
    aliases: tuple[str, ...] = ()
    options: tuple[str, ...] = field(default=())

    @property
    def downloadable(self) -> bool:
        """True when `cxr data download` can fetch the set over plain HTTP."""
        return bool(self.files)


_SPECS: dict[str, DatasetSpec] = {}
_ALIASES: dict[str, str] = {}


def _key(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def register_dataset(spec: DatasetSpec) -> DatasetSpec:
    """Add `spec` under its name and aliases; a name may be registered once."""
    for key in (spec.name, *spec.aliases):
        k = _key(key)
        if k in _SPECS or k in _ALIASES:
            raise ValueError(f"dataset name {key!r} is already registered")
    _SPECS[_key(spec.name)] = spec
    for alias in spec.aliases:
        _ALIASES[_key(alias)] = _key(spec.name)
    return spec


def _load_all() -> None:
    """Import every adapter module so that it registers itself."""
    from cxrkit.datasets import (  # noqa: F401
        chexpert,
        kermany,
        mimic,
        montgomery,
        nih,
        openi,
        padchest,
        rsna,
        shenzhen,
        siim,
        tbx11k,
        vinbigdata,
    )


def get_dataset(name: str) -> DatasetSpec:
    """The spec registered as `name` (or an alias); `DatasetError` naming close matches."""
    _load_all()
    key = _key(name)
    key = _ALIASES.get(key, key)
    if key in _SPECS:
        return _SPECS[key]
    known = sorted(_SPECS) + sorted(_ALIASES)
    close = difflib.get_close_matches(key, known, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise DatasetError(f"unknown dataset {name!r}{hint} (known: {', '.join(sorted(_SPECS))})")


def list_datasets() -> list[DatasetSpec]:
    """Every registered set, sorted by name."""
    _load_all()
    return [_SPECS[k] for k in sorted(_SPECS)]
