"""`create_model`: the single door to every backbone, with its weights and head."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from cxrkit.errors import ModelFileError
from cxrkit.models.net import CXRNet
from cxrkit.models.registry import ModelConfigError, get_spec
from cxrkit.models.weights import load_backbone_weights

HUB = "hub"


def create_model(
    name: str,
    num_classes: int,
    weights: str | Path | None = None,
    random_init: bool = False,
    head_hidden: int | None = None,
    dropout: float = 0.0,
    drop_rate: float | None = None,
) -> CXRNet:
    """Build a `CXRNet` for backbone `name` with a fresh `num_classes` head.

    `weights`: a local file (`.pth`/`.pt`/`.bin`/`.safetensors`; timm, torchvision or the
    layouts in `convert.py`) loaded strictly into the backbone, or `'hub'` for timm's
    pretrained download (online only). With no weights an ImageNet backbone is refused
    unless `random_init=True`; `small_cnn` always starts from random weights.
    `dropout` is the head's dropout, `drop_rate` overrides the backbone's own dropout.
    """
    spec = get_spec(name)
    if num_classes < 1:
        raise ModelConfigError(f"num_classes must be >= 1, got {num_classes}")
    if weights is not None and random_init:
        raise ModelConfigError("pass either weights or random_init=True, not both")
    if weights is None and not random_init and spec.requires_weights:
        raise ModelFileError(
            f"no pretrained weights for {spec.name!r}: pass weights=PATH (a local ImageNet "
            f"file), weights='hub' when online, or random_init=True to train from scratch"
        )
    use_hub = isinstance(weights, str) and weights == HUB
    if use_hub and spec.hub_name is None:
        raise ModelFileError(
            f"{spec.name!r} has no hub weights: pass weights=PATH or random_init=True"
        )
    try:
        backbone = spec.builder(pretrained=use_hub, drop_rate=drop_rate)
    except Exception as exc:
        if not use_hub:
            raise
        raise ModelFileError(
            f"could not fetch hub weights for {spec.name!r} (timm {spec.hub_name!r}): {exc}; "
            "offline, pass weights=PATH to a local file instead"
        ) from exc
    model = CXRNet(backbone, spec, num_classes, head_hidden=head_hidden, dropout=dropout)
    if use_hub:
        model.weights_source = f"hub:{spec.hub_name}"
    elif weights is not None:
        load_backbone_weights(model, weights)
        model.weights_source = str(weights)
    return model


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters in `model` (only those with requires_grad if `trainable_only`)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
