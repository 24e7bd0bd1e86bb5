"""Trace a classifier to ONNX: dynamic batch, the model card in `metadata_props`.

`Classifier.export_onnx` (and `cxr export`) call `export_model_onnx`; this module imports
neither the classifier nor the runtime, so the export and the runtime do not import each other.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import json
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from cxrkit.card import ModelCard
from cxrkit.errors import CxrkitError, DiskFullError, one_line
from cxrkit.io.atomic import atomic_write
from cxrkit.models.model_file import CARD_KEY

#: Names of the graph's input (films (B, 1, S, S) float32 in [0, 1]) and output (logits).
INPUT_NAME = "film"
OUTPUT_NAME = "logits"
OOD_OUTPUT_NAME = "ood_score"  # only in graphs of models with a feature reference
DEFAULT_OPSET = 17


class OnnxExportError(CxrkitError):
    """The TorchScript ONNX exporter cannot express the model (an operator it lacks)."""


def export_model_onnx(
    model: torch.nn.Module,
    card: ModelCard | dict[str, Any],
    out: str | Path,
    *,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Trace `model` to ONNX with a dynamic batch axis; store `card` as JSON metadata; atomic."""
    import onnx

    card = ModelCard.from_dict(card, source=str(out))
    size = card.size
    model = model.float().eval()
    dummy = torch.rand(2, 1, size, size)
    buf = io.BytesIO()
    with torch.no_grad(), _pool_input_sizes(model) as pool_inputs:
        scored = isinstance(model(dummy), (tuple, list))
    model = _exportable_pooling(model, pool_inputs)
    outputs = [OUTPUT_NAME, OOD_OUTPUT_NAME] if scored else [OUTPUT_NAME]
    kwargs: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter: no onnxscript needed
    with warnings.catch_warnings(), _export_errors(card.architecture, size):
        warnings.simplefilter("ignore")  # tracer and deprecation chatter, not actionable here
        torch.onnx.export(
            model,
            (dummy,),
            buf,
            input_names=[INPUT_NAME],
            output_names=outputs,
            dynamic_axes={INPUT_NAME: {0: "batch"}, **{name: {0: "batch"} for name in outputs}},
            opset_version=opset,
            do_constant_folding=True,
            **kwargs,
        )
    proto = onnx.load_from_string(buf.getvalue())
    onnx.helper.set_model_props(proto, {CARD_KEY: json.dumps(card.to_dict())})
    proto.doc_string = (
        f"cxrkit {card.architecture or '?'} classifier: input '{INPUT_NAME}' "
        f"(batch, 1, {size}, {size}) float32 films in [0, 1]; output '{OUTPUT_NAME}' "
        f"(batch, {len(card.class_names)}) for classes {list(card.class_names)}"
    )
    onnx.checker.check_model(proto)
    return _write_atomic(Path(out), proto.SerializeToString())


class _MatrixAvgPool2d(nn.Module):
    """`nn.AdaptiveAvgPool2d` for one input size as two matrix products (exportable at any size).

    Each output cell averages the input rows/columns PyTorch's adaptive pooling gives it
    (start = floor(i * in / out), end = ceil((i + 1) * in / out)), so the result is the
    same; the TorchScript exporter only takes adaptive pooling whose output size divides
    the input size (not, e.g., small_cnn's 16x16 grid from a 4x4 map at 32 px).
    """

    def __init__(self, in_size: tuple[int, int], out_size: tuple[int, int]) -> None:
        super().__init__()
        self.register_buffer("rows", _pool_matrix(in_size[0], out_size[0]))
        self.register_buffer("cols", _pool_matrix(in_size[1], out_size[1]).T.contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.rows @ x @ self.cols


def _pool_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) averaging weights of 1-D adaptive average pooling."""
    weights = torch.zeros(n_out, n_in)
    for i in range(n_out):
        start, end = (i * n_in) // n_out, -(-((i + 1) * n_in) // n_out)
        weights[i, start:end] = 1.0 / (end - start)
    return weights


@contextlib.contextmanager
def _pool_input_sizes(model: nn.Module) -> Iterator[dict[str, tuple[int, int]]]:
    """Record the (H, W) each `nn.AdaptiveAvgPool2d` of `model` sees in forwards run inside."""
    sizes: dict[str, tuple[int, int]] = {}

    def record(name: str, x: torch.Tensor) -> None:
        sizes[name] = (int(x.shape[-2]), int(x.shape[-1]))

    hooks = [
        m.register_forward_pre_hook(lambda mod, inp, k=name: record(k, inp[0]))
        for name, m in model.named_modules()
        if isinstance(m, nn.AdaptiveAvgPool2d)
    ]
    try:
        yield sizes
    finally:
        for h in hooks:
            h.remove()


def _exportable_pooling(model: nn.Module, sizes: dict[str, tuple[int, int]]) -> nn.Module:
    """`model`, or a copy in which `_MatrixAvgPool2d`s stand for the pools the exporter rejects."""
    swaps: dict[str, _MatrixAvgPool2d] = {}
    for name, in_size in sizes.items():
        wanted = model.get_submodule(name).output_size
        wanted = wanted if isinstance(wanted, (tuple, list)) else (wanted, wanted)
        out_size = (wanted[0] or in_size[0], wanted[1] or in_size[1])
        if in_size[0] % out_size[0] or in_size[1] % out_size[1]:
            swaps[name] = _MatrixAvgPool2d(in_size, out_size)
    if not swaps:
        return model
    model = copy.deepcopy(model)  # the caller's model (a live server's) stays as it is
    for name, pool in swaps.items():
        parent, _, attr = name.rpartition(".")
        setattr(model.get_submodule(parent), attr, pool)
    return model


@contextlib.contextmanager
def _export_errors(architecture: str | None, size: int) -> Iterator[None]:
    """Turn the exporter's multi-line errors into one-line `OnnxExportError`s."""
    try:
        yield
    except torch.onnx.errors.OnnxExporterError as exc:
        reason = str(exc).split("[Caused by", 1)[0].split("Please feel free", 1)[0]
        reason = one_line(reason, limit=200).rstrip(" .")
        raise OnnxExportError(
            f"{architecture or 'the model'} at {size} px cannot be exported to ONNX: {reason}"
        ) from exc


def _write_atomic(path: Path, data: bytes) -> Path:
    try:
        return atomic_write(path, lambda fh: fh.write(data))
    except DiskFullError:
        raise  # already one line, naming the file and the full disk; the old file is kept
    except OSError as exc:
        raise CxrkitError(f"{path}: cannot write ONNX file ({exc})") from exc
