"""`cxr predict` on a graph runtime starts without torch, screens with the screening net's
graph, and reads films ahead in worker processes without changing a row."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from cxrkit.classifier import Classifier  # noqa: E402
from cxrkit.classifier.films import FilmFiles, FilmPrep  # noqa: E402
from cxrkit.classifier.pipeline import DecodeWorkerDied, prepared_batches  # noqa: E402
from cxrkit.classifier.screen import screen_image  # noqa: E402
from cxrkit.io import read_image  # noqa: E402
from serve_helpers import save_random_model  # noqa: E402

# Runs `cxr ARGS...` in a fresh interpreter, then says which heavy modules it imported.
PROBE = (
    "import sys\n"
    "from cxrkit.cli.app import app\n"
    "try:\n"
    "    app(prog_name='cxr', args=sys.argv[1:], standalone_mode=False)\n"
    "finally:\n"
    "    heavy = ('torch', 'timm', 'torchvision')\n"
    "    print('IMPORTED', sorted(m for m in heavy if m in sys.modules))\n"
)


@pytest.fixture(scope="module")
def films(tmp_path_factory: pytest.TempPathFactory, kermany_dir: Path) -> Path:
    """Six real films and one unreadable file."""
    folder = tmp_path_factory.mktemp("pipeline_films")
    for src in sorted((kermany_dir / "images").glob("*.png"))[:6]:
        shutil.copy(src, folder / src.name)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    return folder


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("pipeline") / "model.safetensors")


def _probe(*args: object) -> str:
    got = subprocess.run(
        [sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, timeout=300
    )
    assert got.returncode == 0, got.stderr[-2000:]
    return got.stdout


@pytest.mark.parametrize("runtime", ["onnx", "onnx-int8"])
def test_a_graph_runtime_predicts_without_importing_torch(
    runtime: str, model: Path, films: Path, site_dir: Path
) -> None:
    film = next(films.glob("IM*.png"))
    if runtime == "onnx-int8":  # the int8 graph beside the model file, made once
        from cxrkit.export.quantize import quantize_model

        quantize_model(model, model.parent / "model.int8.onnx", site_dir, n_films=8, check=site_dir)
    _probe("predict", model, film, "--runtime", runtime)  # the first run may export
    out = _probe("predict", model, film, "--runtime", runtime)
    assert "IMPORTED []" in out, out
    header, row = out.splitlines()[:2]
    assert header.startswith("path,label") and row.split(",")[0] == str(film)
    assert ",positive,frontal," in row or ",negative," in row  # screened: a polarity verdict


def test_graph_rows_equal_torch_rows(model: Path, films: Path) -> None:
    paths = sorted(films.iterdir())
    torch_rows = Classifier.load(model, "torch", device="cpu").predict(paths, num_workers=0)
    graph_rows = Classifier.load(model, "onnx").predict(paths, num_workers=2)
    assert [r["path"] for r in graph_rows] == [r["path"] for r in torch_rows]
    for a, b in zip(torch_rows, graph_rows, strict=True):
        assert ("error" in a) == ("error" in b)
        if "error" in a:
            continue
        assert a["label"] == b["label"] and a["polarity"] == b["polarity"]
        assert a["view"] == b["view"] and a["not_cxr"] == b["not_cxr"]
        for name, p in a["probabilities"].items():
            assert abs(p - b["probabilities"][name]) < 1e-5
        assert abs(a["p_lateral"] - b["p_lateral"]) < 1e-5


def test_the_screening_graph_agrees_with_the_torch_net(films: Path) -> None:
    for path in sorted(films.glob("IM*.png"))[:3]:
        image = read_image(path)[0]
        a, b = screen_image(image), screen_image(image, graph=True)
        assert a.error is None and b.error is None
        assert (a.polarity, a.view, a.not_cxr) == (b.polarity, b.view, b.not_cxr)
        assert abs(a.p_polarity - b.p_polarity) < 1e-5  # type: ignore[operator]
        assert abs(a.p_lateral - b.p_lateral) < 1e-5  # type: ignore[operator]


def test_workers_give_the_rows_of_one_process(films: Path) -> None:
    paths = sorted(films.iterdir()) * 5  # 35 films, a broken one every 7th
    reader = FilmFiles(paths, FilmPrep(32))
    inline = list(prepared_batches(reader, batch_size=4, workers=0))
    ahead = list(prepared_batches(reader, batch_size=4, workers=2, ahead=6))
    assert [b["order"] for b in ahead] == [b["order"] for b in inline]
    assert [b["errors"] for b in ahead] == [b["errors"] for b in inline]
    assert sum(len(b["errors"]) for b in ahead) == 5
    for a, b in zip(inline, ahead, strict=True):
        np.testing.assert_array_equal(a["image"], b["image"])


class _CrashingFilms(FilmFiles):
    def item(self, i: int) -> dict:  # type: ignore[type-arg]
        if i == 3 and os.getpid() != PARENT:
            os._exit(1)  # a decoder that takes its process down
        return super().item(i)


PARENT = os.getpid()


def test_a_dying_worker_is_an_error_not_a_hang(films: Path) -> None:
    reader = _CrashingFilms(sorted(films.glob("IM*.png")), FilmPrep(32))
    with pytest.raises(DecodeWorkerDied, match="num_workers=0"):
        list(prepared_batches(reader, batch_size=2, workers=2))


def test_a_graph_classifier_loads_its_torch_net_only_for_explain(model: Path, films: Path) -> None:
    clf = Classifier.load(model, "onnx")
    assert clf._net is not None and not hasattr(clf._net, "parameters")  # a loader, unused
    image = read_image(next(films.glob("IM*.png")))[0]
    heat, info = clf.explain(image)
    assert heat.shape == image.shape and np.isfinite(heat).all()
    assert hasattr(clf.net, "parameters")  # loaded now
