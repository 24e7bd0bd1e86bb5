"""A new model file from an existing one: every tensor copied, a new card, the source untouched."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from cxrkit.card import ModelCard
from cxrkit.errors import CxrkitError, ModelFileError
from cxrkit.io.atomic import atomic_write
from cxrkit.models.model_file import CARD_KEY, MODEL_SUFFIX, find_model_file


def check_out_path(source: str | Path, out: str | Path) -> Path:
    """`out` must be a new `.safetensors` file, never the source model file itself."""
    src = find_model_file(source).resolve()
    dst = Path(out).expanduser()
    if dst.suffix.lower() != MODEL_SUFFIX:
        raise CxrkitError(f"out={dst}: give a new model file name ending in {MODEL_SUFFIX}")
    if dst.exists() and dst.resolve() == src:
        raise CxrkitError(f"out={dst} is the model itself; write a new file, the original stays")
    if dst.is_dir():
        raise CxrkitError(f"out={dst} is a folder; give a file name ending in {MODEL_SUFFIX}")
    return dst


def write_model_copy(
    source: str | Path,
    out: str | Path,
    card: ModelCard | dict[str, Any],
    replace: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Copy every tensor (and metadata entry) of `source` to `out` with `card`; atomic write.

    `replace` swaps the values of existing tensors (same name, shape and dtype), e.g. the
    BatchNorm buffers after adaptation; tensors the network does not know (such as
    reference statistics stored beside the weights) are copied as they are.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file, save

    src = find_model_file(source)
    dst = check_out_path(src, out)
    tensors = load_file(str(src), device="cpu")
    with safe_open(str(src), framework="pt") as fh:
        metadata = dict(fh.metadata() or {})
    for name, value in (replace or {}).items():
        old = tensors.get(name)
        if old is None or old.shape != value.shape or old.dtype != value.dtype:
            raise ModelFileError(f"{src}: cannot replace tensor {name!r} (absent or other shape)")
        tensors[name] = value.detach().cpu().contiguous()
    metadata[CARD_KEY] = json.dumps(ModelCard.from_dict(card, source=str(dst)).to_dict())
    blob = save(tensors, metadata=metadata)
    dst.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(dst, lambda fh: fh.write(blob))
