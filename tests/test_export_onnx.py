"""`cxr export --format onnx`: dynamic batch, self-describing file, parity with torch on films."""

from __future__ import annotations

import csv
import errno
import hashlib
import json
import os
import subprocess
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import torch

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

from cxrkit.classifier import (
    Classifier,  # noqa: E402
    onnx_export,  # noqa: E402
)
from cxrkit.classifier.api import predict_batches  # noqa: E402
from cxrkit.classifier.films import FilmFiles, FilmPrep  # noqa: E402
from cxrkit.classifier.graph_cache import GRAPH_DIR  # noqa: E402
from cxrkit.classifier.onnx_runtime import OnnxModel, load_onnx_model  # noqa: E402
from cxrkit.errors import DiskFullError, ModelFileError  # noqa: E402
from cxrkit.io import atomic  # noqa: E402
from cxrkit.models.model_file import load_model_file  # noqa: E402
from serve_helpers import CLASSES, CXR, kermany_films, save_random_model  # noqa: E402
from site_helpers import assert_one_line_error, run_cxr, tiny_model_file  # noqa: E402


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(model file, ONNX file) written by the CLI."""
    tmp = tmp_path_factory.mktemp("export")
    model = save_random_model(tmp / "model.safetensors")
    onnx_path = tmp / "model.onnx"
    done = subprocess.run(
        [str(CXR), "export", str(model), "--format", "onnx", "--out", str(onnx_path)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "max |logit difference| vs torch" in done.stderr
    return model, onnx_path


def _films(kermany_dir: Path, n: int, size: int) -> torch.Tensor:
    ds = FilmFiles(kermany_films(kermany_dir, n), FilmPrep(size, "squash"))
    return torch.stack([ds[i]["image"] for i in range(len(ds))])


def test_onnx_file_carries_the_model_card(exported: tuple[Path, Path]) -> None:
    import onnx

    model, onnx_path = exported
    proto = onnx.load(str(onnx_path), load_external_data=False)
    props = {p.key: p.value for p in proto.metadata_props}
    card = json.loads(props["cxrkit_card"])
    torch_card = load_model_file(model)[1].to_dict()
    assert card["class_names"] == torch_card["class_names"] == list(CLASSES)
    assert card["preprocessing"] == torch_card["preprocessing"]
    assert card["export"]["opset"] == 17
    assert OnnxModel(onnx_path).card.architecture == "small_cnn"


def test_parity_with_torch_on_shared_films_for_any_batch(
    exported: tuple[Path, Path], kermany_dir: Path
) -> None:
    model, onnx_path = exported
    net, card = load_model_file(model)
    films = _films(kermany_dir, 12, card.size)
    with torch.inference_mode():
        expected = net(films).numpy()
    runner = OnnxModel(onnx_path)
    for batch in (1, 5, 12):  # the batch axis is dynamic
        got = np.concatenate(
            [runner.logits(films[i : i + batch].numpy()) for i in range(0, 12, batch)]
        )
        assert np.abs(got - expected).max() <= 1e-4


def test_predict_batches_on_onnx_equals_torch(exported: tuple[Path, Path], kermany_dir: Path):
    model, onnx_path = exported
    paths = kermany_films(kermany_dir, 7)
    net, card = load_model_file(model)
    runner, onnx_card = load_onnx_model(onnx_path)
    kw = dict(batch_size=3, num_workers=0, screen=False)
    a = list(predict_batches(net, card, paths, **kw))
    b = list(predict_batches(runner, onnx_card, paths, **kw))
    assert [r["path"] for r in a] == [r["path"] for r in b] == [str(p) for p in paths]
    for ra, rb in zip(a, b, strict=True):
        assert ra["label"] == rb["label"]
        for c in CLASSES:
            assert abs(ra["probabilities"][c] - rb["probabilities"][c]) <= 1e-5


def test_cli_predict_runtime_onnx(
    exported: tuple[Path, Path], kermany_dir: Path, tmp_path: Path
) -> None:
    """`cxr predict --runtime onnx` on the .onnx file and on the model file (its graph
    exported once and cached beside it) gives the torch rows, unreadable files included."""
    model, onnx_path = exported
    folder = tmp_path / "films"
    folder.mkdir()
    for p in kermany_films(kermany_dir, 4):
        (folder / p.name).symlink_to(p)
    (folder / "notes.png").write_text("not a film")
    net, card = load_model_file(model)
    files = sorted(folder.iterdir())
    expected = list(predict_batches(net, card, files, num_workers=0, screen=False))
    assert sum("error" in r for r in expected) == 1
    for target in (onnx_path, model):
        out = tmp_path / f"{target.suffix[1:]}.csv"
        cmd = [str(CXR), "predict", str(target), str(folder), "--runtime", "onnx"]
        done = subprocess.run(
            [*cmd, "--out", str(out), "--batch-size", "2"], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        with open(out, newline="") as f:
            rows = list(csv.DictReader(f))
        assert [r["path"] for r in rows] == [r["path"] for r in expected]
        for got, want in zip(rows, expected, strict=True):
            assert bool(got["error"]) == ("error" in want)
            if not got["error"]:
                assert abs(float(got["pneumonia"]) - want["probabilities"]["pneumonia"]) <= 1e-5
    assert len(list(folder.iterdir())) == 5  # nothing written beside the films
    # the model file's graph is cached beside it, keyed by the model's sha256 (issue 29)
    graphs = model.parent / GRAPH_DIR
    assert set(model.parent.iterdir()) == {model, onnx_path, graphs}
    sha16 = hashlib.sha256(model.read_bytes()).hexdigest()[:16]
    assert [p.name for p in graphs.iterdir()] == [f"{model.stem}.{sha16}.onnx"]


def test_onnx_without_card_is_refused(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("Identity", ["x"], ["y"])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    path = tmp_path / "plain.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(ModelFileError, match="no cxrkit card"):
        OnnxModel(path)
    with pytest.raises(ModelFileError, match="not found"):
        load_onnx_model(tmp_path / "missing.onnx")


def test_full_disk_is_reported_as_such(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """ENOSPC while writing the .onnx: DiskFullError itself, one CLI line; the old file stays."""
    model = save_random_model(tmp_path / "model.safetensors")
    out = tmp_path / "model.onnx"
    out.write_bytes(b"an earlier export")

    def no_space(data: Any) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def fdopen(fd: int, *args: Any, **kwargs: Any) -> Any:
        fh = os.fdopen(fd, *args, **kwargs)
        fh.write = no_space
        return fh

    monkeypatch.setattr(atomic, "os", SimpleNamespace(**{**vars(os), "fdopen": fdopen}))
    with pytest.raises(DiskFullError) as info:
        Classifier.load(model).export_onnx(out)
    assert type(info.value) is DiskFullError and "cannot write ONNX" not in str(info.value)
    code, _, err = run_cxr("export", model, "--out", out)
    assert_one_line_error(code, err, out.name, "no space left on device")
    assert out.read_bytes() == b"an earlier export"
    assert set(tmp_path.iterdir()) == {model, out}  # no temp left beside it


def _small_model(tmp_path: Path, size: int) -> Path:
    """small_cnn at `size` px: its adaptive pool must make a 16x16 grid of a smaller map."""
    preprocessing = {"size": size, "resize_mode": "squash", "crop": None}
    return tiny_model_file(tmp_path / f"model{size}.safetensors", preprocessing=preprocessing)


@pytest.mark.parametrize("size", [32, 64])
def test_small_card_sizes_export_and_match_torch(tmp_path: Path, size: int) -> None:
    model = _small_model(tmp_path, size)
    out = tmp_path / "model.onnx"
    code, _, err = run_cxr("export", model, "--out", out)
    assert code == 0, err
    assert "max |logit difference| vs torch" in " ".join(err.split())  # wrapped to the console
    net, _ = load_model_file(model)
    films = torch.rand(3, 1, size, size, generator=torch.Generator().manual_seed(1))
    with torch.inference_mode():
        want = net.eval()(films).numpy()
    for batch in (1, 3):
        got = OnnxModel(out).logits(films[:batch].numpy())
        np.testing.assert_allclose(got, want[:batch], atol=1e-5)


@pytest.mark.parametrize(("n_in", "n_out"), [(4, 16), (8, 16), (12, 16), (25, 16), (7, 3), (5, 5)])
def test_matrix_pool_equals_adaptive_pooling(n_in: int, n_out: int) -> None:
    x = torch.rand(2, 3, n_in, n_in + 1)
    pool = onnx_export._MatrixAvgPool2d((n_in, n_in + 1), (n_out, n_out))
    want = torch.nn.functional.adaptive_avg_pool2d(x, n_out)
    torch.testing.assert_close(pool(x), want, atol=1e-6, rtol=1e-6)


def test_large_card_size_graph_keeps_adaptive_pooling(tmp_path: Path) -> None:
    """At the design size (a 16x16 map) nothing is swapped: the graph is what it always was."""
    import onnx

    out = tmp_path / "model.onnx"
    Classifier.load(_small_model(tmp_path, 128)).export_onnx(out)
    ops = {node.op_type for node in onnx.load(str(out)).graph.node}
    assert "MatMul" not in ops


def test_an_unexportable_model_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the TorchScript exporter refuses comes out as `error: ...`, exit 2."""
    monkeypatch.setattr(onnx_export, "_exportable_pooling", lambda model, sizes: model)
    out = tmp_path / "model.onnx"
    code, _, err = run_cxr("export", _small_model(tmp_path, 32), "--out", out)
    assert_one_line_error(code, err, "small_cnn at 32 px", "onnx", "adaptive_avg_pool2d")
    assert not out.exists()
