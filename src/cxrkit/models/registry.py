"""Registry of backbones: one `BackboneSpec` per name, filled by `@register_backbone`."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import nn

from cxrkit.errors import CxrkitError

StateDict = dict[str, torch.Tensor]
WeightLoader = Callable[[StateDict, nn.Module], StateDict]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INCEPTION_MEAN = (0.5, 0.5, 0.5)
INCEPTION_STD = (0.5, 0.5, 0.5)


class ModelConfigError(CxrkitError, ValueError):
    """A model was asked for with an unknown name or contradictory options."""


class UnknownBackboneError(ModelConfigError):
    """No backbone is registered under that name."""


class BackboneBuilder(Protocol):
    """Builds a backbone mapping (B, in_chans, H, W) to pooled features (B, feature_dim)."""

    def __call__(
        self, *, pretrained: bool = False, drop_rate: float | None = None
    ) -> nn.Module: ...


def keep_keys(state_dict: StateDict, backbone: nn.Module) -> StateDict:
    """Default weight loader: the file already uses the backbone's own key names."""
    return state_dict


@dataclass(frozen=True)
class BackboneSpec:
    """Everything cxrkit needs to know about one backbone, without building it.

    `cam_layer` is a dotted module path relative to the `CXRNet` (so it starts with
    `backbone.`); `weight_loader(state_dict, backbone)` renames the keys of a local
    checkpoint (e.g. torchvision or lukemelas layout) to the backbone's own keys.
    """

    name: str
    builder: BackboneBuilder
    input_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    in_chans: int
    feature_dim: int
    cam_layer: str
    weight_loader: WeightLoader = keep_keys
    hub_name: str | None = None
    requires_weights: bool = True
    min_input_size: int = 32
    aliases: tuple[str, ...] = ()
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.mean) != self.in_chans or len(self.std) != self.in_chans:
            raise ValueError(f"{self.name}: mean/std must have {self.in_chans} values")
        if not self.cam_layer.startswith("backbone"):
            raise ValueError(f"{self.name}: cam_layer must start with 'backbone'")


_SPECS: dict[str, BackboneSpec] = {}
_ALIASES: dict[str, str] = {}


def _normalise(name: str) -> str:
    return name.strip().lower().replace("-", "_")


def register_backbone(
    name: str, **spec_fields: object
) -> Callable[[BackboneBuilder], BackboneBuilder]:
    """Decorator: register the decorated builder under `name` with the given spec fields."""

    def decorate(builder: BackboneBuilder) -> BackboneBuilder:
        spec = BackboneSpec(name=name, builder=builder, **spec_fields)  # type: ignore[arg-type]
        for key in (name, *spec.aliases):
            key = _normalise(key)
            if key in _SPECS or key in _ALIASES:
                raise ValueError(f"backbone name {key!r} is registered twice")
        _SPECS[name] = spec
        for alias in spec.aliases:
            _ALIASES[_normalise(alias)] = name
        return builder

    return decorate


def _ensure_registered() -> None:
    # The @register_backbone calls live in backbones.py; import it on first use.
    import cxrkit.models.backbones  # noqa: F401


def list_backbones() -> list[str]:
    """Sorted canonical names of every registered backbone (aliases excluded)."""
    _ensure_registered()
    return sorted(_SPECS)


def get_spec(name: str) -> BackboneSpec:
    """The spec registered under `name` (or one of its aliases); clear error if unknown."""
    _ensure_registered()
    key = _normalise(name)
    key = _ALIASES.get(key, key)
    if key in _SPECS:
        return _SPECS[key]
    known = sorted(_SPECS)
    close = difflib.get_close_matches(key, [*known, *_ALIASES], n=1)
    hint = f"; did you mean {_ALIASES.get(close[0], close[0])!r}?" if close else ""
    raise UnknownBackboneError(
        f"unknown backbone {name!r}{hint} (choose one of: {', '.join(known)})"
    )
