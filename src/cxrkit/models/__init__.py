"""Backbones and classifiers: one registry, one factory, one `CXRNet` wrapper.

Names are imported on first use, so reading a model file's card (`cxrkit.models.model_file`)
or its output columns (`cxrkit.models.outputs`) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cxrkit.lazy import lazy_exports

_EXPORTS = {
    "count_parameters": "factory",
    "create_model": "factory",
    "ClassifierHead": "net",
    "CXRNet": "net",
    "BackboneSpec": "registry",
    "ModelConfigError": "registry",
    "UnknownBackboneError": "registry",
    "get_spec": "registry",
    "list_backbones": "registry",
    "register_backbone": "registry",
    "WeightsReport": "weights",
    "load_backbone_weights": "weights",
    "read_state_dict": "weights",
}

__all__ = sorted(_EXPORTS)

if TYPE_CHECKING:  # pragma: no cover
    from cxrkit.models.factory import count_parameters as count_parameters
    from cxrkit.models.factory import create_model as create_model
    from cxrkit.models.net import ClassifierHead as ClassifierHead
    from cxrkit.models.net import CXRNet as CXRNet
    from cxrkit.models.registry import BackboneSpec as BackboneSpec
    from cxrkit.models.registry import ModelConfigError as ModelConfigError
    from cxrkit.models.registry import UnknownBackboneError as UnknownBackboneError
    from cxrkit.models.registry import get_spec as get_spec
    from cxrkit.models.registry import list_backbones as list_backbones
    from cxrkit.models.registry import register_backbone as register_backbone
    from cxrkit.models.weights import WeightsReport as WeightsReport
    from cxrkit.models.weights import load_backbone_weights as load_backbone_weights
    from cxrkit.models.weights import read_state_dict as read_state_dict

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
