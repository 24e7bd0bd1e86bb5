"""`cxrkit.Classifier`: one preparation, one forward, explain on the predicted input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from cxrkit.classifier import Classifier
from cxrkit.classifier import screen as screening
from cxrkit.errors import ImageReadError
from cxrkit.io import read_image, resize_film
from cxrkit.models.model_file import load_model_file, read_card, save_model_file
from serve_helpers import save_random_model

FILM = "00000001_000.png"


def _lung_crop_model(tmp_path: Path) -> Path:
    path = save_random_model(tmp_path / "lungs.safetensors", seed=3)
    net, _ = load_model_file(path)
    card = read_card(path).to_dict()
    card["preprocessing"] = {**card["preprocessing"], "crop": "lungs"}
    return save_model_file(path, net, card)


class _Inputs:
    """Records the input tensor of every forward of a CXRNet (any copy of it)."""

    def __init__(self, net_type: type) -> None:
        self.seen: list[torch.Tensor] = []
        self.net_type = net_type

    def __enter__(self) -> _Inputs:
        def hook(module: torch.nn.Module, args: tuple) -> None:
            if isinstance(module, self.net_type):
                self.seen.append(args[0].detach().float().cpu().contiguous().clone())

        self.handle = torch.nn.modules.module.register_module_forward_pre_hook(hook)
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.remove()


def test_explain_of_a_lung_crop_model_sees_exactly_the_predicted_input(
    samples_dir: Path, tmp_path: Path
) -> None:
    clf = Classifier.load(_lung_crop_model(tmp_path), device="cpu")
    assert clf.card.preprocessing.crop == "lungs"
    path = samples_dir / FILM
    image, _ = read_image(path)
    with _Inputs(type(clf.net)) as predicted:
        row = clf.predict([path], num_workers=0, screen=False)[0]
    with _Inputs(type(clf.net)) as explained:
        heat, info = clf.explain(image)
    assert len(predicted.seen) == 1 and len(explained.seen) >= 2  # probabilities + CAM
    x = predicted.seen[0]
    for seen in explained.seen:
        assert torch.equal(seen, x)
    # the crop mattered: the whole film squashed is another input
    whole = torch.from_numpy(resize_film(image, clf.preparation.size, "squash"))
    assert not torch.allclose(whole, x[0, 0])
    top, bottom, left, right = info["crop_box"]
    assert (top, bottom, left, right) != (0, image.shape[0], 0, image.shape[1])
    assert heat.shape == image.shape
    outside = np.ones(image.shape, bool)
    outside[top:bottom, left:right] = False
    assert not heat[outside].any()  # the map lies inside the crop's box
    assert info["probability"] == pytest.approx(row["probabilities"][info["class"]], abs=1e-6)


def test_arrays_paths_and_integer_films_give_the_same_row(samples_dir: Path, tmp_path) -> None:
    clf = Classifier.load(save_random_model(tmp_path / "m.safetensors"), device="cpu")
    path = samples_dir / FILM  # an 8-bit PNG: as uint8 it is the same film
    image, _ = read_image(path)
    rows = clf.predict([path, image, np.round(image * 255).astype(np.uint8)], screen=False)
    assert [r["path"] for r in rows] == [str(path), "array[1]", "array[2]"]
    for r in rows[1:]:
        assert r["label"] == rows[0]["label"]
        for c in clf.class_names:
            assert r["probabilities"][c] == pytest.approx(rows[0]["probabilities"][c], abs=1e-6)


def test_bad_arrays_are_row_errors_and_prepare_refuses_them(tmp_path: Path) -> None:
    clf = Classifier.load(save_random_model(tmp_path / "m.safetensors"), device="cpu")
    nan_film = np.full((64, 64), np.nan, np.float32)
    rows = clf.predict([nan_film, np.zeros((4, 4), np.float32)], screen=False)
    assert all("error" in r and "label" not in r for r in rows)
    assert "non-finite" in rows[0]["error"]
    with pytest.raises(ImageReadError):
        clf.prepare(nan_film)


def test_onnx_runtime_matches_torch_and_still_explains(samples_dir: Path, tmp_path) -> None:
    pytest.importorskip("onnxruntime")
    model = save_random_model(tmp_path / "m.safetensors")
    torch_clf = Classifier.load(model, device="cpu")
    onnx_clf = Classifier.load(model, "onnx")
    assert (torch_clf.runtime, onnx_clf.runtime) == ("torch", "onnx")
    image, _ = read_image(samples_dir / FILM)
    films = np.stack([torch_clf.prepare(image), onnx_clf.prepare(image)])
    np.testing.assert_allclose(onnx_clf.probs(films), torch_clf.probs(films), atol=1e-5)
    heat, info = onnx_clf.explain(image)  # the torch net stays loaded for CAM
    assert heat.shape == image.shape and info["class"] in onnx_clf.class_names
    path, _ = torch_clf.export_onnx(tmp_path / "m.onnx")
    from_file = Classifier.load(path)
    assert from_file.runtime == "onnx" and from_file.net is None
    np.testing.assert_allclose(from_file.probs(films), torch_clf.probs(films), atol=1e-5)


def _screen_or_skip() -> None:
    if screening.screen_model()[0] is None:
        pytest.skip(f"screening model unavailable: {screening.screen_model()[1]}")


@pytest.mark.parametrize("views", [None, ["frontal", "lateral"]])
def test_lateral_films_get_the_lateral_warning_unless_the_model_knows_laterals(
    samples_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, views: list | None
) -> None:
    """The screening rows' `view` drives the warning (the view model itself is tested with
    the polarity package): here its rows are made to say lateral."""
    _screen_or_skip()
    import cxrkit.polarity.predict as polarity_predict

    real = polarity_predict.polarity_row

    def lateral_row(p: np.ndarray, model: object) -> dict:
        return {**real(p, model), "view": "lateral", "p_lateral": 0.97}

    monkeypatch.setattr(polarity_predict, "polarity_row", lateral_row)
    path = save_random_model(tmp_path / "m.safetensors")
    clf = Classifier.load(path, device="cpu")
    if views is not None:
        clf.card = clf.card.merged(views=views)
    image, _ = read_image(samples_dir / FILM)
    result = clf.screen(image)
    assert (result.view, result.p_lateral) == ("lateral", 0.97)
    row = clf.predict([image])[0]
    assert (row["view"], row["p_lateral"]) == ("lateral", 0.97)
    if views is None:
        assert screening.LATERAL_WARNING in result.warnings
        assert screening.LATERAL_WARNING in row["warning"]
        assert not any("photo" in w for w in result.warnings)
    else:
        assert screening.LATERAL_WARNING not in result.warnings


def test_screen_gives_polarity_and_ood_in_one_call(samples_dir: Path, tmp_path: Path) -> None:
    _screen_or_skip()
    clf = Classifier.load(save_random_model(tmp_path / "m.safetensors"), device="cpu")
    image, _ = read_image(samples_dir / FILM)
    result = clf.screen(image)
    assert result.error is None and result.polarity == "positive" and result.not_cxr is False
    assert result.out_of_distribution is None  # this model file has no feature reference
    inverted = clf.screen(1.0 - image)
    assert inverted.polarity == "negative" and any("inverted" in w for w in inverted.warnings)


def test_jpeg_draft_decodes_large_jpegs_small_and_leaves_other_films_alone(
    samples_dir: Path, tmp_path: Path
) -> None:
    from PIL import Image

    from cxrkit.classifier.films import FilmFiles

    clf = Classifier.load(save_random_model(tmp_path / "m.safetensors"), device="cpu")
    big = Image.open(samples_dir / FILM).convert("L").resize((1600, 1600))
    jpeg, png = tmp_path / "big.jpg", tmp_path / "big.png"
    big.save(jpeg, quality=90)
    big.save(png)
    shapes: list[tuple[int, ...]] = []

    def prepare(image: np.ndarray) -> np.ndarray:
        shapes.append(image.shape)
        return clf.prepare(image)

    side = clf.preparation.draft_side
    for path in (jpeg, png):
        FilmFiles([path], prepare, draft=side)[0]
    # the JPEG at the smallest DCT scale (1/2 .. 1/8) that keeps the input size; PNG whole
    scale = max(s for s in (1, 2, 4, 8) if 1600 // s >= side)
    assert scale > 1 and shapes == [(1600 // scale, 1600 // scale), (1600, 1600)]
    full = clf.predict([jpeg], screen=False, num_workers=0)[0]["probabilities"]
    fast = list(clf.predict_iter([jpeg], screen=False, num_workers=0, jpeg_draft=True))[0]
    for name, p in full.items():
        assert fast["probabilities"][name] == pytest.approx(p, abs=0.05)
    assert fast["probabilities"] != full  # it did decode differently
