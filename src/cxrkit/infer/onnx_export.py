"""Deprecated path, kept for one release: use `cxrkit.classifier.onnx_export`."""

from cxrkit.classifier.onnx_export import (
    DEFAULT_OPSET,
    INPUT_NAME,
    OOD_OUTPUT_NAME,
    OUTPUT_NAME,
    OnnxExportError,
    export_model_onnx,
)

__all__ = [
    "DEFAULT_OPSET",
    "INPUT_NAME",
    "OOD_OUTPUT_NAME",
    "OUTPUT_NAME",
    "OnnxExportError",
    "export_model_onnx",
]
