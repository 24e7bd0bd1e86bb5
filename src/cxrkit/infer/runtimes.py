"""The inference runtimes a `Classifier` can run on, and the one check that one is installed.

- `torch`: the model file's network, eager (CPU or GPU).
- `onnx`: the exported graph on onnxruntime (CPU), fp32.
- `onnx-int8`: a statically quantized graph (`cxr export --format onnx-int8`), calibrated on
  training films; onnxruntime runs its int8 convolutions.
- `openvino`: the exported graph (fp32, or an int8 file as it is) on OpenVINO's CPU plugin.
"""

from __future__ import annotations

import importlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.errors import CxrkitError, ModelFileError

RUNTIMES = ("torch", "onnx", "onnx-int8", "openvino")
#: The runtimes that run an ONNX graph (the others run the torch network).
GRAPH_RUNTIMES = ("onnx", "onnx-int8", "openvino")
#: The Python module each runtime imports, and the cxrkit extra that installs it.
_PACKAGES = {
    "onnx": ("onnxruntime", "serve"),
    "onnx-int8": ("onnxruntime", "serve"),
    "openvino": ("openvino", "openvino"),
}


class RuntimeMissingError(CxrkitError):
    """The runtime asked for is not installed; the message names the extra that installs it."""


def check_runtime(runtime: str) -> None:
    """Raise `ModelFileError` for an unknown runtime name, `RuntimeMissingError` when its
    package is not installed (naming the extra: `pip install 'cxrkit[openvino]'`)."""
    if runtime not in RUNTIMES:
        raise ModelFileError(f"runtime must be one of {', '.join(RUNTIMES)}, not {runtime!r}")
    if runtime not in _PACKAGES:
        return
    module, extra = _PACKAGES[runtime]
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise RuntimeMissingError(
            f"runtime {runtime!r} needs the {module} package: pip install 'cxrkit[{extra}]' ({exc})"
        ) from exc


def read_onnx_card(path: str | Path) -> dict[str, Any]:
    """The cxrkit card stored in an ONNX file's `metadata_props` (ModelFileError if none)."""
    import onnx

    from cxrkit.models.model_file import CARD_KEY

    p = Path(path)
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelFileError(f"{p}: cannot read ONNX file ({exc})") from exc
    meta = {prop.key: prop.value for prop in proto.metadata_props}
    if CARD_KEY not in meta:
        raise ModelFileError(f"{p}: ONNX file has no cxrkit card; use `cxr export`")
    return json.loads(meta[CARD_KEY])


class OpenVinoModel:
    """An exported cxrkit graph compiled by OpenVINO for the CPU; the same `outputs`
    as `OnnxModel`. fp32 precision is asked for (no silent bf16), `threads` inference
    threads (default: OpenVINO's choice). One infer request per calling thread."""

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import openvino as ov

        self.path = Path(path)
        self.card = read_onnx_card(self.path)
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            core = ov.Core()
            self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        except Exception as exc:  # OpenVINO raises RuntimeError with its own text
            raise ModelFileError(f"{self.path}: OpenVINO cannot compile the graph ({exc})") from exc
        self.scored = len(self.compiled.outputs) > 1
        self._local = threading.local()

    def outputs(self, films: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(logits (B, C), OOD scores (B,) or None) of films (B, 1, S, S) float32 in [0, 1]."""
        request = getattr(self._local, "request", None)
        if request is None:
            request = self._local.request = self.compiled.create_infer_request()
        x = np.ascontiguousarray(films, dtype=np.float32)
        result = request.infer({0: x})
        logits = np.array(result[self.compiled.outputs[0]], dtype=np.float32)
        scores = np.array(result[self.compiled.outputs[1]], np.float32) if self.scored else None
        return logits, scores

    def eval(self) -> OpenVinoModel:
        """No-op, for code written against torch modules."""
        return self
