"""Turn the user's PATH arguments (files, folders, globs) into a sorted list of candidate films."""

from __future__ import annotations

import glob
from collections.abc import Iterable
from pathlib import Path

from cxrkit.errors import CxrkitError

FILM_SUFFIXES = {".png", ".jpg", ".jpeg", ".dcm", ".dicom", ".dic", ".tif", ".tiff"}


def expand_paths(args: Iterable[str | Path]) -> list[Path]:
    """Files as given; folders searched recursively for film suffixes; globs expanded."""
    found: list[Path] = []
    for arg in args:
        p = Path(arg)
        if p.is_dir():
            found.extend(sorted(q for q in p.rglob("*") if q.is_file() and _is_film(q)))
        elif p.exists():
            found.append(p)
        elif any(ch in str(arg) for ch in "*?["):
            found.extend(
                sorted(Path(q) for q in glob.glob(str(arg), recursive=True) if Path(q).is_file())
            )
        else:
            raise CxrkitError(f"{arg}: no such file, folder or matching glob")
    return found


def require_films(args: Iterable[str | Path]) -> list[Path]:
    """`expand_paths`, refusing an empty result (an empty folder, a glob matching nothing)
    with one line instead of a run that does nothing and reports success."""
    files = expand_paths(args)
    if not files:
        raise CxrkitError(f"no films found in {' '.join(str(a) for a in args)}")
    return files


def _is_film(p: Path) -> bool:
    return p.suffix.lower() in FILM_SUFFIXES or p.suffix == ""
