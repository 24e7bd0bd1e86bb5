"""Deprecated path, kept for one release: use `cxrkit.classifier.onnx_runtime`."""

from cxrkit.classifier.onnx_runtime import (
    ONNX_SUFFIX,
    OnnxModel,
    default_threads,
    load_onnx_model,
    torch_onnx_max_diff,
)

__all__ = [
    "ONNX_SUFFIX",
    "OnnxModel",
    "default_threads",
    "load_onnx_model",
    "torch_onnx_max_diff",
]
