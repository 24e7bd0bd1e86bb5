"""Deprecated path, kept for one release: use `cxrkit.classifier.runtimes`."""

from cxrkit.classifier.runtimes import (
    GRAPH_RUNTIMES,
    REGISTRY,
    RUNTIMES,
    OpenVinoModel,
    Runtime,
    RuntimeMissingError,
    check_runtime,
    get_runtime,
    read_onnx_card,
    runtime_help,
)

__all__ = [
    "GRAPH_RUNTIMES",
    "OpenVinoModel",
    "REGISTRY",
    "RUNTIMES",
    "Runtime",
    "RuntimeMissingError",
    "check_runtime",
    "get_runtime",
    "read_onnx_card",
    "runtime_help",
]
