"""The model's name and version as its reports give them (no DICOM library needed)."""

from __future__ import annotations

from pathlib import Path

from cxrkit.card import ModelCard


def model_identity(card: ModelCard | None, model_path: str | Path | None) -> tuple[str, str]:
    """(name, version) of a model: the card's, else the run folder's name and cxrkit's version."""
    from cxrkit.version import __version__

    name, version = (card.name, card.version) if card is not None else (None, None)
    if not name and model_path is not None:
        path = Path(model_path).resolve()
        name = path.name if path.is_dir() else path.parent.name
    return str(name or "cxrkit-model"), str(version or __version__)
