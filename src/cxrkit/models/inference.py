"""Batched inference: logits to probabilities, and a loop over a DataLoader."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import torch

from cxrkit.card import is_probability_row

__all__ = ["is_probability_row", "logits_to_probs", "predict_loader", "resolve_device"]


def logits_to_probs(logits: torch.Tensor, task: str) -> torch.Tensor:
    """Softmax for binary/multiclass heads, independent sigmoids for multi-label heads."""
    if task == "multilabel":
        return torch.sigmoid(logits)
    return torch.softmax(logits, dim=1)


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' picks CUDA when present, else CPU."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def prepare_for_device(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
    """Move to `device`; channels-last on GPU where convolutions gain from it."""
    model = model.to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model


@torch.inference_mode()
def predict_loader(
    model: torch.nn.Module,
    batches: Iterable[dict | None],
    task: str,
    device: torch.device,
    output: str = "probs",
) -> tuple[np.ndarray, np.ndarray]:
    """Run `model` over collated batches; returns (outputs (N, C or D), dataset indices (N,)).

    `output` is "probs" (class probabilities) or "features" (pooled CNN codes).
    Batches that were entirely unreadable (None) are skipped.
    """
    model.eval()
    outs: list[np.ndarray] = []
    idx: list[np.ndarray] = []
    use_amp = device.type == "cuda"
    for batch in batches:
        if batch is None:
            continue
        x = batch["image"].to(device, non_blocking=True)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, enabled=use_amp):
            y = model.features(x) if output == "features" else logits_to_probs(model(x), task)
        outs.append(y.float().cpu().numpy())
        idx.append(np.asarray(batch["index"]))
    if not outs:
        return np.zeros((0, 0), np.float32), np.zeros(0, np.int64)
    return np.concatenate(outs), np.concatenate(idx)
