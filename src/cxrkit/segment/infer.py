"""Lung masks for films: load the (shipped) model, predict, post-process, at the film's size."""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from cxrkit.card import Decision, ModelCard
from cxrkit.errors import ModelFileError
from cxrkit.models.model_file import find_model_file
from cxrkit.segment.model import LungEnsemble, LungNet, default_model_path, load_lung_net

DEFAULT_POSTPROCESS: dict[str, Any] = {"keep_components": 2, "min_component_fraction": 0.1}


@dataclass
class LungModel:
    """A loaded lung U-Net with its card: input size, threshold, post-processing, TTA.

    `card` is a `ModelCard` (JSON fields given here are parsed and validated)."""

    net: LungNet | LungEnsemble
    card: ModelCard
    path: Path

    def __post_init__(self) -> None:
        self.card = ModelCard.from_dict(self.card, source=str(self.path))

    @property
    def size(self) -> int:
        """Square input side the net was trained at (films are squashed to it)."""
        return self.card.size

    @property
    def decision(self) -> Decision:
        """The per-pixel rule: a pixel is lung when its probability reaches the threshold."""
        return self.card.require_decision()

    @property
    def threshold(self) -> float:
        """Probability at or above which a pixel is lung."""
        return self.decision.threshold

    @property
    def postprocess(self) -> Mapping[str, Any] | None:
        """Connected-component clean-up options, or None for the raw thresholded mask
        (a card without `postprocess` gets the default clean-up; `{}` means none)."""
        options = self.card.postprocess
        if options is None:
            return DEFAULT_POSTPROCESS
        return options or None

    @property
    def views(self) -> tuple[str, ...]:
        """Film views the model segments: its card's `views`, frontal only when absent."""
        from cxrkit.guard.view import supported_views

        return supported_views(self.card)

    @property
    def tta(self) -> bool:
        """Whether predictions average the film and its horizontal mirror."""
        return bool(self.card.tta_hflip)


def load_lung_model(path: str | os.PathLike[str] | None = None) -> LungModel:
    """Load a lung model file (or run folder); None loads the one shipped in the package."""
    target = Path(path) if path is not None else default_model_path()
    if not target.exists():
        raise ModelFileError(f"{target}: lung model not found")
    target = find_model_file(target)
    return _load_cached(str(target.resolve()), target.stat().st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _load_cached(path: str, _mtime: int) -> LungModel:
    net, card = load_lung_net(path)
    return LungModel(net=net, card=card, path=Path(path))


def as_film(image_or_path: Any) -> np.ndarray:
    """A float32 (H, W) film in [0, 1] from a path (any cxrkit format) or an array.

    uint8 / uint16 arrays are scaled by their type's maximum; RGB(A) arrays are averaged.
    """
    if isinstance(image_or_path, str | os.PathLike):
        from cxrkit.io import read_image

        return read_image(image_or_path)[0]
    arr = np.asarray(image_or_path)
    scale = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else 1.0
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].astype(np.float32).mean(axis=-1)
    arr = arr.astype(np.float32) / np.float32(scale)
    if arr.ndim != 2 or 0 in arr.shape:
        raise ValueError(f"expected a 2-D film, got shape {arr.shape}")
    return np.clip(arr.astype(np.float32), 0.0, 1.0)


def clean_mask(
    mask: np.ndarray, keep_components: int = 2, min_component_fraction: float = 0.1
) -> np.ndarray:
    """Keep the largest `keep_components` blobs (each >= a fraction of the largest), fill holes."""
    m = np.asarray(mask, dtype=bool)
    labels, n = ndimage.label(m)
    if n == 0:
        return m
    sizes = np.bincount(labels.ravel())[1:]
    order = np.argsort(-sizes)[:keep_components]
    keep = [i + 1 for i in order if sizes[i] >= min_component_fraction * sizes[order[0]]]
    out = np.isin(labels, keep)
    return ndimage.binary_fill_holes(out)


@torch.inference_mode()
def predict_probs(
    model: LungModel, films: list[np.ndarray], batch_size: int = 8
) -> list[np.ndarray]:
    """Lung probability maps, each float32 at its film's own (H, W)."""
    from cxrkit.io import resize_film

    net, size = model.net.eval(), model.size
    out: list[np.ndarray] = []
    for start in range(0, len(films), batch_size):
        chunk = films[start : start + batch_size]
        x = torch.from_numpy(np.stack([resize_film(f, size, "squash") for f in chunk]))[:, None]
        probs = torch.sigmoid(net(x))
        if model.tta:
            probs = 0.5 * (probs + torch.sigmoid(net(x.flip(-1))).flip(-1))
        for film, p in zip(chunk, probs, strict=True):
            full = F.interpolate(p[None], size=film.shape, mode="bilinear", align_corners=False)
            out.append(full[0, 0].numpy())
    return out


def probs_to_mask(model: LungModel, probs: np.ndarray) -> np.ndarray:
    """Threshold a probability map and apply the model's post-processing."""
    mask = model.decision.positive(probs)
    options = model.postprocess
    return clean_mask(mask, **options) if options else mask


def segment_lungs(
    image_or_path: Any,
    model: LungModel | str | os.PathLike[str] | None = None,
    *,
    check_view: bool = True,
) -> np.ndarray:
    """Boolean (H, W) lung mask of a film (path or array) at its original size.

    `model` is a loaded `LungModel`, a model file path, or None for the shipped model.
    With `check_view`, a film the screening net calls lateral (or frontal) when the lung
    model's card does not list that view raises `UnsupportedViewError` instead of
    returning a mask the model was never trained to draw; `check_view=False` skips it.
    """
    from cxrkit.errors import UnsupportedViewError
    from cxrkit.segment.views import skip_reason

    lung = model if isinstance(model, LungModel) else load_lung_model(model)
    film = as_film(image_or_path)
    if check_view:
        reason = skip_reason(film, lung)[0]
        if reason:
            raise UnsupportedViewError(f"{reason} (check_view=False segments it anyway)")
    return probs_to_mask(lung, predict_probs(lung, [film])[0])


def segment_many(
    films: list[np.ndarray], model: LungModel, batch_size: int = 8
) -> list[np.ndarray]:
    """Boolean masks for several films, batched."""
    return [probs_to_mask(model, p) for p in predict_probs(model, films, batch_size)]
