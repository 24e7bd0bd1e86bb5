"""Deprecated path, kept for one release: use `cxrkit.classifier.films`."""

from cxrkit.classifier.films import (
    FilmFiles,
    FilmPrep,
    collate_films,
    film_name,
)

__all__ = [
    "FilmFiles",
    "FilmPrep",
    "collate_films",
    "film_name",
]
