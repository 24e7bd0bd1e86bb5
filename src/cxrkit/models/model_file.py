"""One self-describing model file: safetensors weights plus a JSON card, no pickled code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cxrkit.errors import ModelFileError
from cxrkit.io.atomic import atomic_write

CARD_KEY = "cxrkit_card"
FORMAT_VERSION = 1
MODEL_SUFFIX = ".safetensors"


def save_model_file(path: str | Path, model: torch.nn.Module, card: dict[str, Any]) -> Path:
    """Write `model`'s weights and `card` (JSON-serialisable) atomically to `path`."""
    from safetensors.torch import save

    card = {**card, "format_version": FORMAT_VERSION}
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    blob = save(state, metadata={CARD_KEY: json.dumps(card)})
    return atomic_write(path, lambda fh: fh.write(blob))


def provenance() -> dict[str, Any]:
    """When and with which versions a model was made (for its card)."""
    import platform
    from datetime import datetime, timezone

    from cxrkit import __version__

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "cxrkit": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }


def read_card(path: str | Path) -> dict[str, Any]:
    """Return the JSON card of a model file without loading its weights."""
    from safetensors import safe_open

    path = find_model_file(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types on bad headers
        raise ModelFileError(f"{path}: not a cxrkit model file ({exc})") from exc
    if CARD_KEY not in meta:
        raise ModelFileError(
            f"{path}: safetensors file has no cxrkit card; was it written by cxrkit?"
        )
    return json.loads(meta[CARD_KEY])


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[Any, dict]:
    """Rebuild the network described by the card and load its weights; returns (model, card)."""
    from safetensors.torch import load_file

    from cxrkit.models import create_model

    path = find_model_file(path)
    card = read_card(path)
    try:
        model = create_model(
            card["architecture"],
            num_classes=len(card["class_names"]),
            random_init=True,
            **card.get("model_kwargs", {}),
        )
    except KeyError as exc:
        raise ModelFileError(f"{path}: model card lacks {exc}") from exc
    state = load_file(str(path), device="cpu")
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelFileError(
            f"{path}: weights do not fit architecture {card['architecture']!r} "
            f"(missing {list(missing)[:5]}, unexpected {list(unexpected)[:5]})"
        )
    return model.to(device).eval(), card


def find_model_file(path: str | Path) -> Path:
    """Accept a model file or a run directory holding `model.safetensors`."""
    p = Path(path)
    if p.is_dir():
        p = p / f"model{MODEL_SUFFIX}"
    if not p.is_file():
        raise ModelFileError(f"{p}: model file not found")
    return p
