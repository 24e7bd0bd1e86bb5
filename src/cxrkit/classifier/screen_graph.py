"""The shipped screening net (polarity, view, not-a-chest-film) as an ONNX graph.

The graph runtimes (`onnx`, `onnx-int8`, `openvino`) screen films with this, so their
`cxr predict` never imports torch. The graph is exported once from the shipped model file
and cached by its sha256 like a classifier's (`cxrkit.classifier.graph_cache`); it runs on
one onnxruntime thread (the net is tiny: more threads only wait for each other). Its
probabilities match the torch net's to about 1e-7.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrkit.classifier.graph_cache import cached_graph, export_record
from cxrkit.classifier.onnx_runtime import OnnxModel
from cxrkit.polarity.classes import CLASSES
from cxrkit.polarity.model import (
    PolarityModel,
    find_polarity_file,
    logits_to_probs_np,
    read_polarity_card,
)


class ScreenGraph(PolarityModel):
    """A `PolarityModel` whose `net` is an `OnnxModel`: the same card, thresholds and
    `prepare`; `probs` from onnxruntime."""

    def probs(self, films: np.ndarray, batch_size: int = 256) -> np.ndarray:  # type: ignore[override]
        """(N, 4) for films (N, S, S) or (N, 1, S, S) in [0, 1]: class softmax, p(lateral)."""
        x = np.asarray(films, dtype=np.float32)
        if x.ndim == 3:
            x = x[:, None]
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected films (N, S, S) or (N, 1, S, S), got {tuple(x.shape)}")
        if not len(x):
            return np.zeros((0, len(CLASSES) + 1), np.float32)
        chunks = [
            logits_to_probs_np(self.net.logits(x[start : start + batch_size]))
            for start in range(0, len(x), batch_size)
        ]
        return np.concatenate(chunks)


def load_screen_graph(path: str | Path | None = None) -> ScreenGraph:
    """The polarity model file at `path` (default: the shipped one) on onnxruntime; its
    graph is exported (with torch) only when the cache has none for these bytes."""
    model_file = find_polarity_file(path)
    card = read_polarity_card(model_file)

    def export(target: Path, sha: str) -> Path:
        from cxrkit.classifier.onnx_export import export_model_onnx
        from cxrkit.polarity.model import load_polarity_model

        net = load_polarity_model(model_file).net
        return export_model_onnx(net, card.merged(export=export_record(model_file, sha)), target)

    beside = path is not None  # the shipped model's graph goes to the cache folder
    graph_path, sha = cached_graph(model_file, export, beside=beside)
    graph = OnnxModel(graph_path, threads=1)
    if (graph.card.provenance.export or {}).get("source_sha256") != sha:  # not ours: remake
        graph_path.unlink(missing_ok=True)
        graph_path, _ = cached_graph(model_file, export, sha, beside=beside)
        graph = OnnxModel(graph_path, threads=1)
    return ScreenGraph(graph, card, model_file)
