"""Backbones and classifiers: one registry, one factory, one `CXRNet` wrapper."""

from cxrkit.models.factory import count_parameters, create_model
from cxrkit.models.net import ClassifierHead, CXRNet
from cxrkit.models.registry import (
    BackboneSpec,
    ModelConfigError,
    UnknownBackboneError,
    get_spec,
    list_backbones,
    register_backbone,
)
from cxrkit.models.weights import WeightsReport, load_backbone_weights, read_state_dict

__all__ = [
    "BackboneSpec",
    "CXRNet",
    "ClassifierHead",
    "ModelConfigError",
    "UnknownBackboneError",
    "WeightsReport",
    "count_parameters",
    "create_model",
    "get_spec",
    "list_backbones",
    "load_backbone_weights",
    "read_state_dict",
    "register_backbone",
]
