"""CAM heat maps: original film size, one map per class asked, every method, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cxrkit.classifier.api import explain
from cxrkit.explain import METHODS, overlay_heatmap, to_original
from cxrkit.io import read_image
from cxrkit.models import create_model
from cxrkit.models.model_file import save_model_file

CLASSES = ["normal", "pneumonia"]


def small_card(size: int = 64, resize_mode: str = "squash") -> dict:
    return {
        "architecture": "small_cnn",
        "model_kwargs": {"head_hidden": None, "dropout": 0.0},
        "task": "binary",
        "class_names": CLASSES,
        "preprocessing": {"size": size, "resize_mode": resize_mode},
        "thresholds": [0.5],
    }


@pytest.fixture(scope="module")
def small_model() -> torch.nn.Module:
    torch.manual_seed(0)  # random weights: these tests check geometry, not medicine
    return create_model("small_cnn", num_classes=2, random_init=True).eval()


@pytest.fixture(scope="module")
def padchest(samples_dir: Path) -> tuple[Path, np.ndarray]:
    path = samples_dir / "16747_3_1.jpg"  # 885 x 1036: not square, not the input size
    return path, read_image(path)[0]


def test_map_has_the_original_size_and_changes_with_the_class(small_model, padchest) -> None:
    _, image = padchest
    maps = {}
    for name in CLASSES:
        heat, info = explain(small_model, small_card(), image, class_name=name)
        assert heat.shape == image.shape == (885, 1036)
        assert heat.dtype == np.float32 and heat.min() >= 0.0 and heat.max() <= 1.0
        assert heat.max() > 0.5  # a real map, not all zeros
        assert info["class"] == name and info["original_size"] == [885, 1036]
        assert sum(info["probabilities"].values()) == pytest.approx(1.0, abs=1e-5)
        for box in info["boxes"]:
            assert 0 <= box["x0"] < box["x1"] <= 1036 and 0 <= box["y0"] < box["y1"] <= 885
        maps[name] = heat
    assert np.abs(maps["normal"] - maps["pneumonia"]).mean() > 0.05
    _, default = explain(small_model, small_card(), image)
    assert default["class"] in CLASSES  # the decided class when none is named


@pytest.mark.parametrize("method", METHODS)
def test_every_method_gives_a_map_at_original_size(small_model, padchest, method) -> None:
    _, image = padchest
    heat, info = explain(small_model, small_card(32), image, method=method, class_name=1)
    assert heat.shape == image.shape and np.isfinite(heat).all()
    assert info["method"] == method and info["class"] == "pneumonia"


def test_pad_and_crop_maps_land_on_the_film_pixels() -> None:
    cam = np.ones((64, 64), np.float32)
    cropped = to_original(cam, (100, 200), "crop")  # the centre 100x100 square was seen
    assert cropped.shape == (100, 200)
    assert cropped[:, :50].max() == 0 and cropped[:, 150:].max() == 0
    assert cropped[:, 50:150].min() == pytest.approx(1.0)
    letterbox = np.zeros((64, 64), np.float32)
    letterbox[16:48, :] = 1.0  # the film occupies the middle rows of the padded input
    assert to_original(letterbox, (100, 200), "pad").min() == pytest.approx(1.0, abs=1e-3)


def test_overlay_keeps_cold_areas_gray_and_colours_hot_ones(padchest) -> None:
    _, image = padchest
    heat = np.zeros_like(image)
    heat[100:300, 200:500] = 1.0
    rgb = overlay_heatmap(image, heat)
    assert rgb.shape == (*image.shape, 3) and rgb.dtype == np.uint8
    cold = rgb[500:, 600:]
    assert np.array_equal(cold[..., 0], cold[..., 2])  # untouched gray film
    hot = rgb[150:250, 250:450].astype(int)
    assert np.abs(hot[..., 0] - hot[..., 2]).mean() > 20  # coloured


def test_cli_writes_overlays_maps_and_json(small_model, padchest, samples_dir, tmp_path) -> None:
    from typer.testing import CliRunner

    from cxrkit.cli.app import app

    model_file = save_model_file(tmp_path / "model.safetensors", small_model, small_card())
    jpg, image = padchest
    dcm = samples_dir / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
    out = tmp_path / "explain"
    args = ["explain", str(model_file), str(jpg), str(dcm), "--out", str(out)]
    result = CliRunner().invoke(app, [*args, "--save-npy", "--class", "pneumonia", "--no-lungs"])
    assert result.exit_code == 0, result.output
    rows = json.loads((out / "explain.json").read_text())
    assert [r["class"] for r in rows] == ["pneumonia", "pneumonia"]
    for row, shape in zip(rows, [image.shape, (1024, 1024)], strict=True):
        png = Image.open(row["overlay"])
        assert png.mode == "RGB" and png.size == (shape[1], shape[0])
        heat = np.load(row["npy"])
        assert heat.shape == shape and heat.dtype == np.float32


LATERAL_FILM = "lungmasks_v7/images/16664_2_1.png"  # held-out lateral film (test patient)


def test_explain_flags_views_and_polarity_like_predict(small_model, padchest, shared_data) -> None:
    from cxrkit.classifier.screen import LATERAL_WARNING

    lateral = read_image(shared_data / LATERAL_FILM)[0]
    _, info = explain(small_model, small_card(), lateral)
    assert info["view"] == "lateral" and LATERAL_WARNING in info["warning"]
    _, info = explain(small_model, small_card(), 1.0 - padchest[1])  # an inverted frontal film
    assert info["view"] == "frontal" and info["polarity"] == "negative"
    assert "inverted" in info["warning"]
    _, info = explain(small_model, small_card(), padchest[1], screen=False)
    assert "view" not in info and info["warning"] == ""


def test_non_finite_probabilities_are_an_error_not_a_class(small_model, padchest) -> None:
    from cxrkit.classifier import Classifier
    from cxrkit.errors import ModelOutputError

    broken = Classifier(small_model, small_card())
    broken.outputs = lambda films: (np.full((1, 2), np.nan, np.float32), None)  # type: ignore[method-assign]
    with pytest.raises(ModelOutputError, match="non-finite"):
        broken.explain(padchest[1])


def test_cli_json_carries_the_warning_and_no_lung_share_for_a_lateral_film(
    small_model, shared_data, tmp_path
) -> None:
    from typer.testing import CliRunner

    from cxrkit.classifier.screen import LATERAL_WARNING
    from cxrkit.cli.app import app

    model_file = save_model_file(tmp_path / "model.safetensors", small_model, small_card())
    out = tmp_path / "explain"
    film = shared_data / LATERAL_FILM
    result = CliRunner().invoke(app, ["explain", str(model_file), str(film), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "lateral view" in " ".join(result.output.split())
    (row,) = json.loads((out / "explain.json").read_text())
    assert row["view"] == "lateral" and LATERAL_WARNING in row["warning"]
    assert row["lung_energy"] is None  # the frontal-only lung model gives no mask here
