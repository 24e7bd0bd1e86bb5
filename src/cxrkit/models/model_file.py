"""One self-describing model file: safetensors weights plus a JSON card, no pickled code.

Reading a card (`read_card`) imports no torch: `cxr predict --runtime onnx` starts without it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrkit.card import CARD_KEY, FORMAT_VERSION, ModelCard
from cxrkit.errors import ModelFileError
from cxrkit.io.atomic import atomic_write

if TYPE_CHECKING:
    import torch

__all__ = ["CARD_KEY", "FORMAT_VERSION", "MODEL_SUFFIX", "save_model_file", "read_card"]
MODEL_SUFFIX = ".safetensors"


#: Tensors under this prefix are not network weights (e.g. `ood.*`, the feature reference).
EXTRA_PREFIXES = ("ood.",)


def save_model_file(
    path: str | Path,
    model: torch.nn.Module | dict[str, torch.Tensor],
    card: ModelCard | dict[str, Any],
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write `model`'s weights (a module or its packed state dict), `extra_tensors` (names
    under `EXTRA_PREFIXES`) and `card` atomically to `path`. A card given as JSON is
    validated first (`ModelCard.from_dict`): an invalid card is never written."""
    import torch
    from safetensors.torch import save

    card = ModelCard.from_dict(card, source=str(path)).to_dict()
    weights = model.state_dict() if isinstance(model, torch.nn.Module) else model
    state = {k: v.detach().cpu().contiguous() for k, v in weights.items()}
    for name, tensor in (extra_tensors or {}).items():
        if not name.startswith(EXTRA_PREFIXES):
            raise ValueError(f"extra tensor {name!r} must start with one of {EXTRA_PREFIXES}")
        state[name] = tensor.detach().cpu().contiguous()
    blob = save(state, metadata={CARD_KEY: json.dumps(card)})
    return atomic_write(path, lambda fh: fh.write(blob))


def provenance() -> dict[str, Any]:
    """When and with which versions a model was made (for its card)."""
    import platform
    from datetime import datetime, timezone

    import torch

    from cxrkit.version import __version__

    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "versions": {
            "cxrkit": __version__,
            "torch": torch.__version__,
            "python": platform.python_version(),
        },
    }


def read_card(path: str | Path) -> ModelCard:
    """The validated card of a model file (migrated to the current schema), read without
    loading its weights. An invalid card raises `CardError` naming the file and field."""
    path = find_model_file(path)
    return ModelCard.from_dict(read_card_json(path), source=str(path))


def read_card_json(path: str | Path) -> dict[str, Any]:
    """The card's JSON exactly as stored in the file (not migrated, not validated)."""
    from safetensors import safe_open

    path = find_model_file(path)
    try:
        with safe_open(str(path), framework="numpy") as f:  # the header only: no torch
            meta = f.metadata() or {}
    except Exception as exc:  # safetensors raises several types on bad headers
        raise ModelFileError(f"{path}: not a cxrkit model file ({exc})") from exc
    if CARD_KEY not in meta:
        raise ModelFileError(
            f"{path}: safetensors file has no cxrkit card; was it written by cxrkit?"
        )
    return json.loads(meta[CARD_KEY])


# Model files cxrkit writes that are not classifiers: task -> (what it is, its command).
OTHER_TASKS = {
    "segmentation": ("lung segmentation", "cxr segment"),
    "polarity": ("film polarity / screening", "cxr polarity check"),
}


def check_classifier_card(path: Path, card: ModelCard) -> ModelCard:
    """`card` when it describes a classifier network; `ModelFileError` naming the command
    for a lung or polarity model, or for a card without an architecture."""
    other = OTHER_TASKS.get(card.task)
    if other:
        raise ModelFileError(
            f"{path}: a {other[0]} model, not a classifier; use it with `{other[1]}`"
        )
    if not card.architecture:
        raise ModelFileError(f"{path}: model card lacks 'architecture'")
    return card


def load_model_file(path: str | Path, device: str | torch.device = "cpu") -> tuple[Any, ModelCard]:
    """Rebuild the network described by the card and load its weights; returns (model, card)."""
    from safetensors.torch import load_file

    from cxrkit.models import create_model

    path = find_model_file(path)
    card = check_classifier_card(path, read_card(path))
    model = create_model(
        card.architecture,
        num_classes=len(card.class_names),
        random_init=True,
        **card.network.kwargs,
    )
    state = load_file(str(path), device="cpu")
    state = {k: v for k, v in state.items() if not k.startswith(EXTRA_PREFIXES)}
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelFileError(
            f"{path}: weights do not fit architecture {card.architecture!r} "
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


def read_extra_tensors(path: str | Path, prefix: str) -> dict[str, torch.Tensor]:
    """The model file's non-network tensors whose names start with `prefix` (may be empty)."""
    from safetensors import safe_open

    path = find_model_file(path)
    with safe_open(str(path), framework="pt") as f:
        return {k: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}  # noqa: SIM118
