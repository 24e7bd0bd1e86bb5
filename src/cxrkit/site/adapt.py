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
    try:
        seen = _forward_site_batches(model, batches)
    finally:
        for name, m in layers.items():
            m.momentum = momenta[name]
        model.train(was_training)
        model.eval()
    return seen


def _forward_site_batches(model: nn.Module, batches: Iterable[dict[str, Any]]) -> int:
    """Run `model` on every batch of two films or more (one has no variance); returns films seen.

    Raises CxrkitError when no batch held two readable films.
    """
    seen = 0
    for batch in batches:
        x = batch.get("image")
        if x is None or x.shape[0] < 2:
            continue
        model(x)
        seen += int(x.shape[0])
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


class _Moments:
    """Running per-channel sums of a layer's input: mean and (population) variance."""

    def __init__(self) -> None:
        self.n = 0
        self.s: torch.Tensor | float = 0.0
        self.ss: torch.Tensor | float = 0.0

    def add(self, x: torch.Tensor) -> None:
        dims = [d for d in range(x.ndim) if d != 1]
        x = x.double()
        self.n += x.numel() // x.shape[1]
        self.s = self.s + x.sum(dims)
        self.ss = self.ss + (x * x).sum(dims)

    def get(self) -> tuple[torch.Tensor, torch.Tensor]:
        mean = self.s / self.n
        return mean, (self.ss / self.n - mean * mean).clamp_min(0.0)


@torch.no_grad()
def batchnorm_input_moments(
    model: nn.Module, batches: Iterable[dict[str, Any]]
) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """Per-channel mean and variance of every BN layer's input, the model as it is (eval)."""
    layers = batchnorm_layers(model)
    moments = {name: _Moments() for name in layers}
    hooks = [
        m.register_forward_pre_hook(lambda mod, inp, k=name: moments[k].add(inp[0]))
        for name, m in layers.items()
    ]
    model.eval()
    try:
        for batch in batches:
            if batch.get("image") is not None:
                model(batch["image"])
    finally:
        for h in hooks:
            h.remove()
    if not all(m.n for m in moments.values()):
        raise CxrkitError("no readable reference films")
    return {name: m.get() for name, m in moments.items()}


@torch.no_grad()
def adapt_batchnorm_relative(
    model: nn.Module,
    batches: Iterable[dict[str, Any]],
    reference: dict[str, tuple[torch.Tensor, torch.Tensor]],
) -> int:
    """AdaBN for BN statistics that do not describe the training films (a frozen backbone).

    `reference` holds each BN input's mean/variance on training-domain films. New
    statistics make a site activation leave each BN with the moments a training film's
    activation had: var' = (var0 + eps) * v_site / v_ref - eps, mu' = m_site -
    sqrt(v_site / v_ref) * (m_ref - mu0). During the single pass over the site films every
    BN already maps its batch to those moments, so downstream layers see adapted inputs.
    """
    layers = batchnorm_layers(model)
    site = {name: _Moments() for name in layers}
    old = {n: (m.running_mean.clone(), m.running_var.clone()) for n, m in layers.items()}

    def hook(name: str, m: nn.Module, inp: tuple[torch.Tensor, ...], _out: Any) -> torch.Tensor:
        x = inp[0]
        site[name].add(x)
        shape = [1, -1] + [1] * (x.ndim - 2)
        dims = [d for d in range(x.ndim) if d != 1]
        mu0, var0 = old[name]
        m_ref, v_ref = (t.to(x.dtype) for t in reference[name])
        scale = torch.sqrt(v_ref + m.eps) / torch.sqrt(var0 + m.eps)
        shift = (m_ref - mu0) / torch.sqrt(var0 + m.eps)
        m_b, v_b = x.mean(dims), x.var(dims, unbiased=False)
        y = (x - m_b.view(shape)) / torch.sqrt(v_b.view(shape) + m.eps)
        y = y * scale.view(shape) + shift.view(shape)
        if m.affine:
            y = y * m.weight.view(shape) + m.bias.view(shape)
        for extra in ("drop", "act"):  # timm's BatchNormAct2d: BN, then dropout and activation
            if isinstance(getattr(m, extra, None), nn.Module):
                y = getattr(m, extra)(y)
        return y

    hooks = [
        m.register_forward_hook(lambda mod, i, o, k=n: hook(k, mod, i, o))
        for n, m in layers.items()
    ]
    model.eval()
    try:
        seen = _forward_site_batches(model, batches)
    finally:
        for h in hooks:
            h.remove()
    for name, m in layers.items():
        mu0, var0 = old[name]
        m_s, v_s = (t.to(mu0.dtype) for t in site[name].get())
        m_ref, v_ref = (t.to(mu0.dtype) for t in reference[name])
        ratio = (v_s + 1e-12) / (v_ref + 1e-12)
        m.running_var.copy_(((var0 + m.eps) * ratio - m.eps).clamp_min(1e-8))
        m.running_mean.copy_(m_s - torch.sqrt(ratio) * (m_ref - mu0))
    return seen
