"""A site's films: find them (labelled or not), read them as the card says, run the network."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from cxrkit.card import ModelCard
from cxrkit.data.identity import dataset_name, labels_file, set_fingerprint
from cxrkit.data.table import load_table
from cxrkit.errors import CxrkitError, DatasetError


@dataclass
class SiteSet:
    """Films of a site; `y` and `groups` are None when the set is used without labels."""

    name: str
    paths: list[Path]
    y: np.ndarray | None = None
    groups: np.ndarray | None = None
    labels_sha256: str | None = None
    class_counts: dict[str, int] | None = None
    patient_ids_given: bool = False


def labelled_site(data: str | Path, card: ModelCard | dict[str, Any]) -> SiteSet:
    """A labelled site set in the card's classes; patients from `patient_id` when present
    (`patient_ids_given` says whether every film has one)."""
    card = ModelCard.from_dict(card)
    src = Path(data).expanduser()
    if not src.exists():
        raise DatasetError(f"{src}: no such site set (a labels.csv or a folder holding one)")
    table = load_table(
        src,
        label_column=card.label_column or "label",
        task=card.task,
        class_names=list(card.class_names),
    )
    return SiteSet(
        name=dataset_name(src),
        paths=[rec.path for rec in table.records],
        y=table.targets(),
        groups=np.asarray(table.patient_ids()),
        labels_sha256=set_fingerprint(src, table),
        class_counts=table.class_counts(),
        patient_ids_given=all((rec.row.get("patient_id") or "").strip() for rec in table.records),
    )


def unlabelled_site(data: str | Path) -> SiteSet:
    """Films of a folder (recursively) or of a labels.csv's `path` column; labels are ignored."""
    from cxrkit.classifier.paths import expand_paths

    src = Path(data).expanduser()
    if not src.exists():
        raise DatasetError(f"{src}: no such site folder or labels.csv")
    csv_file = labels_file(src)
    if src.is_file() and src.suffix.lower() != ".csv":
        raise DatasetError(f"{src}: give a folder of films or a labels.csv, not one film")
    paths = _csv_paths(csv_file) if csv_file.is_file() else expand_paths([src])
    if not paths:
        raise DatasetError(f"{src}: no films found")
    return SiteSet(name=dataset_name(src), paths=paths)


def _csv_paths(csv_file: Path) -> list[Path]:
    """The existing files of a CSV's `path` column (relative to the CSV's folder)."""
    try:
        with csv_file.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DatasetError(f"{csv_file}: cannot read CSV ({exc})") from exc
    if rows and "path" not in rows[0]:
        raise DatasetError(f"{csv_file}: missing column 'path'")
    root = csv_file.parent.absolute()
    found = [root / (r.get("path") or "").strip() for r in rows if (r.get("path") or "").strip()]
    return [p for p in found if p.is_file()]


def film_loader(
    paths: list[Path],
    card: ModelCard | dict[str, Any],
    batch_size: int = 32,
    num_workers: int = 0,
) -> DataLoader:
    """Batches of films read, cropped and resized exactly as `cxr predict` does."""
    from cxrkit.classifier.films import FilmFiles, FilmPrep, collate_films

    return DataLoader(
        FilmFiles(paths, FilmPrep.from_card(ModelCard.from_dict(card))),
        batch_size=batch_size,
        num_workers=num_workers,
        collate_fn=collate_films,
    )


def network_probabilities(
    model: torch.nn.Module, card: ModelCard | dict[str, Any], loader: DataLoader
) -> tuple[np.ndarray, np.ndarray]:
    """The network's own probabilities (no card calibration) and the indices of readable films."""
    from cxrkit.classifier import Classifier

    card = ModelCard.from_dict(card)
    uncalibrated = card.merged(probability_calibration=None, prior_shift=None)
    probs, index = Classifier(model, uncalibrated).batch_probs(loader)
    if len(index) == 0:
        raise CxrkitError("no readable films in the site set")
    return probs.astype(np.float64), index.astype(np.int64)
