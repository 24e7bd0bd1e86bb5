"""Export a cxrkit model file to ONNX: dynamic batch, the model card in `metadata_props`."""

from __future__ import annotations

import inspect
import io
import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from cxrkit.errors import CxrkitError, DiskFullError
from cxrkit.io.atomic import atomic_write
from cxrkit.models.model_file import CARD_KEY, load_model_file

#: Names of the graph's input (films (B, 1, S, S) float32 in [0, 1]) and output (logits).
INPUT_NAME = "film"
OUTPUT_NAME = "logits"
OOD_OUTPUT_NAME = "ood_score"  # only in graphs of models with a feature reference
DEFAULT_OPSET = 17


def export_onnx(
    model_path: str | Path, out: str | Path, *, opset: int = DEFAULT_OPSET
) -> tuple[Path, dict[str, Any]]:
    """Export a model file (or run directory) to `out`; returns (path, card written into it)."""
    from cxrkit.models.ood import ScoredClassifier, load_feature_reference

    model, card = load_model_file(model_path)
    card = {**card, "export": {"source": Path(model_path).name, "opset": opset}}
    reference = load_feature_reference(model_path)
    if reference is not None:  # the graph computes the out-of-distribution score too
        model = ScoredClassifier(model, reference)
    return export_model_onnx(model, card, out, opset=opset), card


def export_model_onnx(
    model: torch.nn.Module, card: dict[str, Any], out: str | Path, *, opset: int = DEFAULT_OPSET
) -> Path:
    """Trace `model` to ONNX with a dynamic batch axis; store `card` as JSON metadata; atomic."""
    import onnx

    size = int(card["preprocessing"]["size"])
    model = model.float().eval()
    dummy = torch.rand(2, 1, size, size)
    buf = io.BytesIO()
    with torch.no_grad():
        scored = isinstance(model(dummy), (tuple, list))
    outputs = [OUTPUT_NAME, OOD_OUTPUT_NAME] if scored else [OUTPUT_NAME]
    kwargs: dict[str, Any] = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False  # the TorchScript exporter: no onnxscript needed
    with warnings.catch_warnings():
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
    onnx.helper.set_model_props(proto, {CARD_KEY: json.dumps(card)})
    proto.doc_string = (
        f"cxrkit {card.get('architecture', '?')} classifier: input '{INPUT_NAME}' "
        f"(batch, 1, {size}, {size}) float32 films in [0, 1]; output '{OUTPUT_NAME}' "
        f"(batch, {len(card['class_names'])}) for classes {card['class_names']}"
    )
    onnx.checker.check_model(proto)
    return _write_atomic(Path(out), proto.SerializeToString())


def torch_onnx_max_diff(
    model: torch.nn.Module, onnx_path: str | Path, films: torch.Tensor
) -> float:
    """Largest absolute logit difference between the torch model and the ONNX file on `films`."""
    from cxrkit.infer.onnx_runtime import OnnxModel

    with torch.inference_mode():
        expected = model.float().eval()(films).numpy()
    got = OnnxModel(onnx_path).logits(films.numpy())
    return float(np.abs(expected - got).max())


def _write_atomic(path: Path, data: bytes) -> Path:
    try:
        return atomic_write(path, lambda fh: fh.write(data))
    except DiskFullError:
        raise  # already one line, naming the file and the full disk; the old file is kept
    except OSError as exc:
        raise CxrkitError(f"{path}: cannot write ONNX file ({exc})") from exc
