"""AdaBN (Li et al., 2016): re-estimate every BatchNorm's running statistics on a site's films."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from cxrkit.errors import CxrkitError

BN_BUFFERS = ("running_mean", "running_var", "num_batches_tracked")


def batchnorm_layers(model: nn.Module) -> dict[str, nn.modules.batchnorm._BatchNorm]:
    """Named BatchNorm layers that keep running statistics."""
    return {
        name: m
        for name, m in model.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats
    }


@torch.no_grad()
def adapt_batchnorm(model: nn.Module, batches: Iterable[dict[str, Any]]) -> int:
    """Replace BN running mean/var with the cumulative average over `batches`; returns films seen.

    Only BatchNorm layers run in train mode (momentum=None: an equal-weight average of the
    batch statistics); dropout and everything else stay in eval mode, no gradient is taken.
    A batch of one film is skipped (its variance is undefined).
    """
    layers = batchnorm_layers(model)
    if not layers:
        raise CxrkitError("the model has no BatchNorm layers: nothing for AdaBN to adapt")
    momenta = {name: m.momentum for name, m in layers.items()}
    was_training = model.training
    model.eval()
    for m in layers.values():
        m.reset_running_stats()
        m.momentum = None
        m.train()
    seen = 0
    try:
        for batch in batches:
            x = batch.get("image")
            if x is None or x.shape[0] < 2:
                continue
            model(x)
            seen += int(x.shape[0])
    finally:
        for name, m in layers.items():
            m.momentum = momenta[name]
        model.train(was_training)
        model.eval()
    if seen == 0:
        raise CxrkitError("AdaBN needs at least 2 readable films")
    return seen


def batchnorm_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The BN buffers of `model` by state-dict key (what adaptation changes)."""
    out: dict[str, torch.Tensor] = {}
    for name, m in batchnorm_layers(model).items():
        for buf in BN_BUFFERS:
            value = getattr(m, buf, None)
            if value is not None:
                out[f"{name}.{buf}"] = value.detach().cpu().clone()
    return out
