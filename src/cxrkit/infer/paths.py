"""Deprecated path, kept for one release: use `cxrkit.classifier.paths`."""

from cxrkit.classifier.paths import (
    FILM_SUFFIXES,
    expand_paths,
    require_films,
)

__all__ = [
    "FILM_SUFFIXES",
    "expand_paths",
    "require_films",
]
