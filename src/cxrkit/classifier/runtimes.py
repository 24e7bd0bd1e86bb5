"""The inference runtimes a `Classifier` can run on, and the one check that one is installed.

- `torch`: the model file's network, eager (CPU or GPU).
- `onnx`: the exported graph on onnxruntime (CPU), fp32.
- `onnx-int8`: a statically quantized graph (`cxr export --format onnx-int8`), calibrated on
  training films; onnxruntime runs its int8 convolutions.
- `openvino`: the exported graph (fp32, or an int8 file as it is) on OpenVINO's CPU plugin.
- `openvino-bf16`: the same in bfloat16 arithmetic, on CPUs that have it (AVX512-BF16 or
  AMX): about twice the speed of fp32 on this project's machine; probabilities move in
  the third decimal, so check a model with `benchmarks/runtime_parity.py` before using it.
"""

from __future__ import annotations

import importlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.card import CARD_KEY, ModelCard
from cxrkit.errors import CxrkitError, ModelFileError


class RuntimeMissingError(CxrkitError):
    """The runtime asked for is not installed; the message names the extra that installs it."""


@dataclass(frozen=True)
class Runtime:
    """One runtime: its name, what it runs, the package it imports and the cxrkit extra that
    installs it, and how it opens an ONNX graph (None: it runs the torch network)."""

    name: str
    summary: str
    package: str | None = None
    extra: str | None = None
    graph: str | None = None  # "onnxruntime" | "openvino": the graph opener
    precision: str = "f32"  # OpenVINO's inference precision

    def check(self) -> None:
        """Raise `RuntimeMissingError` (naming the extra to install) when the package is
        missing."""
        if self.package is None:
            return
        try:
            importlib.import_module(self.package)
        except ImportError as exc:
            raise RuntimeMissingError(
                f"runtime {self.name!r} needs the {self.package} package: "
                f"pip install 'cxrkit[{self.extra}]' ({exc})"
            ) from exc

    def open_graph(self, path: str | Path, threads: int | None = None) -> Any:
        """The ONNX graph at `path` on this runtime (an `OnnxModel` or `OpenVinoModel`)."""
        if self.graph == "openvino":
            return OpenVinoModel(path, threads=threads, precision=self.precision)
        from cxrkit.classifier.onnx_runtime import load_onnx_model

        return load_onnx_model(path, threads=threads)[0]


#: The one list of runtimes: `Classifier.load`, the CLI's `--runtime` help and the errors
#: read it.
REGISTRY: dict[str, Runtime] = {
    r.name: r
    for r in (
        Runtime("torch", "the model file's network, eager (CPU or GPU)"),
        Runtime(
            "onnx", "onnxruntime; MODEL may be a .onnx file", "onnxruntime", "serve", "onnxruntime"
        ),
        Runtime(
            "onnx-int8",
            "the file `cxr export --format onnx-int8` writes",
            "onnxruntime",
            "serve",
            "onnxruntime",
        ),
        Runtime("openvino", "OpenVINO's CPU plugin", "openvino", "openvino", "openvino"),
        Runtime(
            "openvino-bf16",
            "OpenVINO in bfloat16, on CPUs with AVX512-BF16 or AMX; check accuracy first",
            "openvino",
            "openvino",
            "openvino",
            precision="bf16",
        ),
    )
}
RUNTIMES = tuple(REGISTRY)
#: The runtimes that run an ONNX graph (the others run the torch network).
GRAPH_RUNTIMES = tuple(name for name, r in REGISTRY.items() if r.graph)


def get_runtime(name: str) -> Runtime:
    """The registry's runtime called `name`; `ModelFileError` naming the choices else."""
    if name not in REGISTRY:
        raise ModelFileError(f"runtime must be one of {', '.join(RUNTIMES)}, not {name!r}")
    return REGISTRY[name]


def check_runtime(runtime: str) -> None:
    """Raise `ModelFileError` for an unknown runtime name, `RuntimeMissingError` when its
    package is not installed (naming the extra: `pip install 'cxrkit[openvino]'`)."""
    get_runtime(runtime).check()


def runtime_help() -> str:
    """The `--runtime` help text, from the registry."""
    return " | ".join(
        f"{r.name} ({r.summary}" + (f"; needs the {r.extra} extra)" if r.extra else ")")
        for r in REGISTRY.values()
    )


def read_onnx_card(path: str | Path) -> ModelCard:
    """The cxrkit card stored in an ONNX file's `metadata_props` (ModelFileError if none)."""
    import onnx

    p = Path(path)
    try:
        proto = onnx.load(str(p), load_external_data=False)
    except Exception as exc:  # onnx raises DecodeError and friends
        raise ModelFileError(f"{p}: cannot read ONNX file ({exc})") from exc
    meta = {prop.key: prop.value for prop in proto.metadata_props}
    if CARD_KEY not in meta:
        raise ModelFileError(f"{p}: ONNX file has no cxrkit card; use `cxr export`")
    return ModelCard.from_dict(json.loads(meta[CARD_KEY]), source=str(p))


class OpenVinoModel:
    """An exported cxrkit graph compiled by OpenVINO for the CPU; the same `outputs`
    as `OnnxModel`. `precision` is asked for explicitly: 'f32' (never a silent bf16) or
    'bf16', refused on a CPU without bfloat16 arithmetic (OpenVINO would quietly run f32).
    `threads` inference threads (default: OpenVINO's choice). One infer request per
    calling thread."""

    def __init__(
        self, path: str | Path, *, threads: int | None = None, precision: str = "f32"
    ) -> None:
        import openvino as ov

        self.path, self.precision = Path(path), precision
        self.card = read_onnx_card(self.path)
        config: dict[str, Any] = {
            "INFERENCE_PRECISION_HINT": precision,
            "PERFORMANCE_HINT": "LATENCY",
        }
        if threads:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        try:
            core = ov.Core()
            if precision == "bf16" and "BF16" not in core.get_property(
                "CPU", "OPTIMIZATION_CAPABILITIES"
            ):
                raise ModelFileError(
                    "runtime 'openvino-bf16': this CPU has no bfloat16 arithmetic "
                    "(AVX512-BF16 or AMX); use runtime='openvino'"
                )
            self.compiled = core.compile_model(core.read_model(str(self.path)), "CPU", config)
        except ModelFileError:
            raise
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
