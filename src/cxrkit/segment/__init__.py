"""Lung segmentation: U-Net lung masks, lung crops and lung-aware heat-map measures."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrkit.lazy import lazy_exports

# Public name -> submodule, imported on first use (crop and metrics never pay for torch).
_EXPORTS = {
    "segment_lungs": "infer",
    "segment_many": "infer",
    "load_lung_model": "infer",
    "LungModel": "infer",
    "crop_to_lungs": "crop",
    "lung_bbox": "crop",
    "heatmap_energy_in_mask": "metrics",
    "dice": "metrics",
    "iou": "metrics",
    "hd95": "metrics",
    "evaluate_lung_model": "evaluate",
    "train_lung_model": "train",
    "build_lung_ensemble": "ensemble",
    "SegTrainConfig": "train",
    "overlay_image": "overlay",
    "default_model_path": "model",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from cxrkit.segment.crop import crop_to_lungs as crop_to_lungs
    from cxrkit.segment.crop import lung_bbox as lung_bbox
    from cxrkit.segment.ensemble import build_lung_ensemble as build_lung_ensemble
    from cxrkit.segment.evaluate import evaluate_lung_model as evaluate_lung_model
    from cxrkit.segment.infer import LungModel as LungModel
    from cxrkit.segment.infer import load_lung_model as load_lung_model
    from cxrkit.segment.infer import segment_lungs as segment_lungs
    from cxrkit.segment.infer import segment_many as segment_many
    from cxrkit.segment.metrics import dice as dice
    from cxrkit.segment.metrics import hd95 as hd95
    from cxrkit.segment.metrics import heatmap_energy_in_mask as heatmap_energy_in_mask
    from cxrkit.segment.metrics import iou as iou
    from cxrkit.segment.model import default_model_path as default_model_path
    from cxrkit.segment.overlay import overlay_image as overlay_image
    from cxrkit.segment.train import SegTrainConfig as SegTrainConfig
    from cxrkit.segment.train import train_lung_model as train_lung_model


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
