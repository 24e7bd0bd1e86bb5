"""Read a local weights file safely and load it, strictly, into a model's backbone."""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cxrkit.errors import ModelFileError
from cxrkit.models.registry import StateDict, get_spec

if TYPE_CHECKING:
    from cxrkit.models.net import CXRNet

CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "state_dict_ema", "net")
STRIP_PREFIXES = ("module.", "_orig_mod.")
CLASSIFIER_PREFIXES = ("fc", "classifier", "head", "_fc", "last_linear", "AuxLogits")
_MAX_LISTED = 5


@dataclass
class WeightsReport:
    """What `load_backbone_weights` did: tensors loaded and checkpoint keys left out."""

    path: str
    loaded: int
    dropped: list[str] = field(default_factory=list)


def read_state_dict(path: str | Path) -> StateDict:
    """Tensors of a `.safetensors` or PyTorch file, never unpickling code (weights_only)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: weights file not found")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            return dict(load_file(str(path), device="cpu"))
        except Exception as exc:
            raise ModelFileError(f"{path}: not a readable safetensors file ({exc})") from exc
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        raise ModelFileError(
            f"{path}: the file holds pickled Python objects, which cxrkit never loads "
            "(torch.load weights_only=True); save a plain state_dict "
            "(torch.save(model.state_dict(), path)) or a .safetensors file instead"
        ) from exc
    except Exception as exc:
        raise ModelFileError(f"{path}: not a readable PyTorch weights file ({exc})") from exc
    return unwrap_state_dict(obj, path)


def unwrap_state_dict(obj: object, path: str | Path = "<weights>") -> StateDict:
    """The tensor dict inside a checkpoint: unwraps `{'state_dict': ...}`-style containers."""
    for _ in range(3):
        if not isinstance(obj, dict):
            break
        inner = next((obj[k] for k in CONTAINER_KEYS if isinstance(obj.get(k), dict)), None)
        if inner is None:
            break
        obj = inner
    if not isinstance(obj, dict):
        raise ModelFileError(f"{path}: expected a state_dict, found {type(obj).__name__}")
    tensors = {str(k): v for k, v in obj.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise ModelFileError(f"{path}: the file holds no tensors")
    return tensors


def strip_prefixes(state_dict: StateDict) -> StateDict:
    """Drop wrapper prefixes (`module.` from DataParallel, `_orig_mod.` from torch.compile).

    A cxrkit `CXRNet` file (`backbone.*`, `head.*`, `mean`, `std`) is reduced to its
    `backbone.*` entries, so a trained cxrkit model can seed a new one.
    """
    out: StateDict = {}
    for key, value in state_dict.items():
        changed = True
        while changed:
            changed = False
            for prefix in STRIP_PREFIXES:
                if key.startswith(prefix):
                    key, changed = key[len(prefix) :], True
        out[key] = value
    if any(k.startswith("backbone.") for k in out):
        out = {k[len("backbone.") :]: v for k, v in out.items() if k.startswith("backbone.")}
    return out


def _listed(keys: list[str]) -> str:
    shown = ", ".join(keys[:_MAX_LISTED])
    return shown + (f", ... ({len(keys)} in all)" if len(keys) > _MAX_LISTED else "")


def load_backbone_weights(model: CXRNet, path: str | Path) -> WeightsReport:
    """Load a local weights file into `model.backbone`, strictly (every backbone key).

    Steps: read (weights_only / safetensors), unwrap containers, strip `module.`-style
    prefixes, rename keys with the backbone spec's `weight_loader`, drop classifier keys
    the backbone does not have, then check that every backbone key is present with the
    right shape before loading. Raises `ModelFileError` naming the mismatched keys.
    """
    spec = get_spec(model.arch)
    backbone = model.backbone
    state = spec.weight_loader(strip_prefixes(read_state_dict(path)), backbone)
    expected = backbone.state_dict()

    dropped = [k for k in state if k not in expected and k.split(".")[0] in CLASSIFIER_PREFIXES]
    state = {k: v for k, v in state.items() if k not in dropped}
    for key, value in expected.items():  # old checkpoints may lack the BN batch counter
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = value

    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    wrong_shape = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    if missing or unexpected or wrong_shape:
        problems = []
        if missing:
            problems.append(f"{len(missing)} backbone keys missing ({_listed(missing)})")
        if unexpected:
            problems.append(f"{len(unexpected)} unexpected keys ({_listed(unexpected)})")
        if wrong_shape:
            problems.append(f"{len(wrong_shape)} shape mismatches ({_listed(wrong_shape)})")
        raise ModelFileError(
            f"{path}: weights do not fit backbone {spec.name!r}: " + "; ".join(problems)
        )
    backbone.load_state_dict(state, strict=True)
    return WeightsReport(path=str(path), loaded=len(state), dropped=dropped)
