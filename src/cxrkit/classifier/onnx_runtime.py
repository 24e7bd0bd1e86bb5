"""Run an exported cxrkit model on onnxruntime, as a drop-in for the torch model in predict."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.errors import ModelFileError
from cxrkit.models.model_file import CARD_KEY

if TYPE_CHECKING:
    import torch

ONNX_SUFFIX = ".onnx"


def default_threads() -> int:
    """CPU cores this process may use (its affinity mask), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class OnnxModel:
    """An onnxruntime session over an exported model; `model(films)` returns logits like torch.

    Films are (B, 1, S, S) float32 in [0, 1] (normalisation is inside the graph). The card
    comes from the file's `metadata_props`, so the file is self-describing. Sessions use all
    graph optimisations, `threads` intra-op threads (default: the usable cores), no
    inter-op parallelism and no spin-waiting; `session.run` is thread-safe.
    """

    def __init__(self, path: str | Path, *, threads: int | None = None) -> None:
        import onnxruntime as ort

        self.path = Path(path)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.intra_op_num_threads = threads or default_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3  # errors only
        # Idle threads sleep instead of spinning: they share the cores with the DataLoader
        # workers decoding the next batch (measured faster on 2 busy cores).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self.session = ort.InferenceSession(
                str(self.path), opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own exception types
            raise ModelFileError(f"{self.path}: cannot load ONNX model ({exc})") from exc
        meta = self.session.get_modelmeta().custom_metadata_map
        if CARD_KEY not in meta:
            raise ModelFileError(f"{self.path}: ONNX file has no cxrkit card; use `cxr export`")
        self.card = ModelCard.from_dict(json.loads(meta[CARD_KEY]), source=str(self.path))
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.scored = len(self.output_names) > 1  # second output: the OOD score

    def logits(self, films: np.ndarray) -> np.ndarray:
        """Logits (B, C) of films (B, 1, S, S) float32 in [0, 1]."""
        x = np.ascontiguousarray(films, dtype=np.float32)
        return self.session.run(None, {self.input_name: x})[0]

    def outputs(self, films: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """(logits (B, C), OOD scores (B,) or None when the graph has no score output)."""
        x = np.ascontiguousarray(films, dtype=np.float32)
        out = self.session.run(None, {self.input_name: x})
        return out[0], (out[1] if self.scored else None)

    def __call__(self, films: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Torch-module-like call: a CPU float tensor in; logits out, or (logits, OOD scores)
        like `ScoredClassifier` when the graph computes the score."""
        import torch

        logits, scores = self.outputs(films.detach().cpu().numpy())
        if scores is None:
            return torch.from_numpy(logits)
        return torch.from_numpy(logits), torch.from_numpy(scores)

    def eval(self) -> OnnxModel:
        """No-op, for code written against torch modules."""
        return self


def load_onnx_model(path: str | Path, *, threads: int | None = None) -> tuple[OnnxModel, dict]:
    """Return (OnnxModel, card) from a .onnx file or a run directory holding `model.onnx`.

    A safetensors model file runs on onnxruntime through
    `Classifier.load(path, runtime="onnx")`, which exports it in memory first.
    """
    p = Path(path)
    if p.is_dir() and (p / f"model{ONNX_SUFFIX}").is_file():
        p = p / f"model{ONNX_SUFFIX}"
    if p.suffix.lower() != ONNX_SUFFIX:
        raise ModelFileError(f"{p}: not an .onnx file; use Classifier.load(path, runtime='onnx')")
    if not p.is_file():
        raise ModelFileError(f"{p}: ONNX file not found")
    model = OnnxModel(p, threads=threads)
    return model, model.card


def torch_onnx_max_diff(
    model: torch.nn.Module, onnx_path: str | Path, films: torch.Tensor
) -> float:
    """Largest absolute logit difference between the torch model and the ONNX file on `films`."""
    import torch

    with torch.inference_mode():
        expected = model.float().eval()(films).numpy()
    got = OnnxModel(onnx_path).logits(films.numpy())
    return float(np.abs(expected - got).max())
