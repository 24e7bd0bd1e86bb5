"""The ONNX graph of a model file is exported once, cached by the model's sha256, and never
paired with a changed model file (the onnx runtime's graph and the int8 graph alike)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

import cxrkit.classifier.onnx_export as onnx_export  # noqa: E402
from cxrkit.card import CARD_KEY  # noqa: E402
from cxrkit.classifier import Classifier  # noqa: E402
from cxrkit.classifier.graph_cache import GRAPH_DIR  # noqa: E402
from cxrkit.errors import ModelFileError  # noqa: E402
from serve_helpers import save_random_model  # noqa: E402


@pytest.fixture
def exports(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """Every ONNX export made while the test runs."""
    made: list[Path] = []
    real = onnx_export.export_model_onnx

    def counting(model, card, out, **kw):  # type: ignore[no-untyped-def]
        made.append(Path(out))
        return real(model, card, out, **kw)

    monkeypatch.setattr(onnx_export, "export_model_onnx", counting)
    return made


def _films(size: int) -> np.ndarray:
    return np.random.default_rng(0).random((3, size, size), dtype=np.float32)


def test_the_graph_is_exported_once_and_refreshed_when_the_model_changes(
    tmp_path: Path, exports: list[Path]
) -> None:
    model = save_random_model(tmp_path / "model.safetensors", seed=1)
    first = Classifier.load(model, "onnx")
    again = Classifier.load(model, "onnx")
    assert len(exports) == 1 and exports[0].parent == tmp_path / GRAPH_DIR
    films = _films(first.card.size)
    np.testing.assert_array_equal(first.probs(films), again.probs(films))
    save_random_model(model, seed=2)  # the same file name, other weights
    changed = Classifier.load(model, "onnx")
    assert len(exports) == 2 and exports[1] != exports[0]
    assert not exports[0].exists()  # the stale graph is gone
    torch_probs = Classifier.load(model, "torch", device="cpu").probs(films)
    np.testing.assert_allclose(changed.probs(films), torch_probs, atol=1e-5)
    assert np.abs(changed.probs(films) - first.probs(films)).max() > 1e-4  # not the old net


def test_a_read_only_model_folder_caches_in_the_cache_folder(
    tmp_path: Path, exports: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders; the fallback cannot be seen")
    monkeypatch.setenv("CXR_CACHE_DIR", str(tmp_path / "cache"))
    folder = tmp_path / "ro"
    model = save_random_model(folder / "model.safetensors")
    folder.chmod(stat.S_IRUSR | stat.S_IXUSR)
    try:
        Classifier.load(model, "onnx")
    finally:
        folder.chmod(stat.S_IRWXU)
    assert exports[0].parent == tmp_path / "cache" / "graphs"


def test_an_int8_graph_of_another_model_file_is_refused(tmp_path: Path) -> None:
    """model.int8.onnx records the sha256 of the model file it was made from; after the
    model file changes, loading the pair fails and names the command that remakes it."""
    import onnx

    model = save_random_model(tmp_path / "model.safetensors", seed=1)
    int8 = tmp_path / "model.int8.onnx"
    Classifier.load(model, device="cpu").export_onnx(int8)
    proto = onnx.load(str(int8))  # stands in for a quantized graph: only its card matters
    props = {p.key: p.value for p in proto.metadata_props}
    card = json.loads(props[CARD_KEY])
    card["quantization"] = {"method": "test"}
    onnx.helper.set_model_props(proto, {CARD_KEY: json.dumps(card)})
    onnx.save(proto, str(int8))
    assert Classifier.load(model, "onnx-int8").runtime == "onnx-int8"
    # the graph file itself is paired with the model file its card names, beside it
    by_graph = Classifier.load(int8, "onnx-int8")
    assert by_graph.runtime == "onnx-int8" and by_graph.net is not None
    save_random_model(model, seed=2)
    with pytest.raises(ModelFileError, match="not made from model.safetensors as it is now"):
        Classifier.load(model, "onnx-int8")
    with pytest.raises(ModelFileError, match="not made from model.safetensors as it is now"):
        Classifier.load(int8, "onnx-int8")
