"""The shipped lung model: loads offline, masks at the original size, Dice on shared films."""

from __future__ import annotations

import socket
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrkit.segment import crop_to_lungs, load_lung_model, segment_lungs
from cxrkit.segment.model import default_model_path

# Mean Dice of the shipped model (v2, the two-net ensemble) on the first 4 frontal test films
# of each annotator's set was measured at 0.976 (covid_lungmasks, per film 0.967-0.981) and
# 0.969 (lungmasks_v7, 0.966-0.974); the floor leaves a margin for platform float differences.
DICE_FLOOR = 0.95


@pytest.fixture(scope="module")
def lung_model(one_torch_thread):
    return load_lung_model()


def test_shipped_model_loads_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_network(*args, **kwargs):
        raise AssertionError("the lung model must load without network access")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    path = default_model_path()
    assert path.is_file() and path.stat().st_size <= 10 * 1024 * 1024
    assert (path.parent / "MODEL_CARD.md").is_file()
    model = load_lung_model()
    assert model.card.network.kind == "lung_segmentation"
    assert model.size % 32 == 0
    assert load_lung_model() is model  # cached


def test_mask_at_original_size_for_a_real_film(samples_dir: Path, lung_model) -> None:
    path = samples_dir / "00000001_000.png"
    mask = segment_lungs(path, lung_model)
    assert mask.dtype == bool and mask.shape == Image.open(path).size[::-1]
    assert 0.1 < mask.mean() < 0.5
    half = mask.shape[1] // 2
    assert mask[:, :half].sum() > 0.3 * mask.sum() and mask[:, half:].sum() > 0.3 * mask.sum()
    uint8 = np.asarray(Image.open(path).convert("L"))
    np.testing.assert_array_equal(segment_lungs(uint8, lung_model), mask)


def test_dice_on_shared_test_films(lungmask_dir: Path, lung_model) -> None:
    from cxrkit.segment.metrics import dice
    from cxrkit.segment.sets import load_mask_sets, read_set_split

    v7 = lungmask_dir.parent / "lungmasks_v7"
    if not v7.is_dir():
        pytest.skip(f"{v7} not found")
    films = load_mask_sets([lungmask_dir, v7])
    test = read_set_split(default_model_path().parent / "split.csv", films)["test"]
    for set_name in ("covid_lungmasks", "lungmasks_v7"):
        picked = [films[int(i)] for i in test if films[int(i)].set_name == set_name]
        picked = [f for f in picked if f.view_group == "frontal"][:4]
        scores = []
        for f in picked:
            film, truth = f.read()
            scores.append(dice(segment_lungs(film, lung_model), truth))
        assert len(scores) == 4 and np.mean(scores) >= DICE_FLOOR, (set_name, scores)


def test_crop_of_a_real_film_keeps_both_lungs(samples_dir: Path, lung_model) -> None:
    from cxrkit.io import read_image

    film, _ = read_image(samples_dir / "00000001_000.png")
    mask = segment_lungs(film, lung_model)
    crop = crop_to_lungs(film, mask, margin=0.1)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert crop.shape[0] >= rows[-1] - rows[0] + 1 and crop.shape[1] >= cols[-1] - cols[0] + 1
    assert crop.size < film.size


def test_dataset_applies_the_lung_crop(kermany_dir: Path, tmp_path: Path, lung_model) -> None:
    from cxrkit.classifier.dataset import CXRDataset
    from cxrkit.data import load_table

    table = load_table(kermany_dir)
    plain = CXRDataset(table, indices=[0, 1], size=96, cache_dir=tmp_path)
    cropped = CXRDataset(table, indices=[0, 1], size=96, cache_dir=tmp_path, crop="lungs")
    a, b = plain[0]["image"], cropped[0]["image"]
    assert a.shape == b.shape == (1, 96, 96)
    assert not np.allclose(a.numpy(), b.numpy())
    assert cropped.cache is not None and cropped.cache.misses == 1
    assert np.allclose(cropped[0]["image"].numpy(), b.numpy()) and cropped.cache.hits == 1


def test_predict_films_apply_the_cards_crop(kermany_dir: Path, lung_model) -> None:
    from cxrkit.classifier.dataset import CXRDataset
    from cxrkit.classifier.films import FilmFiles, FilmPrep
    from cxrkit.data import load_table
    from cxrkit.segment.crop import FilmCrop

    table = load_table(kermany_dir)
    path = table.records[0].path
    via_predict = FilmFiles([path], FilmPrep(64, "squash", FilmCrop("lungs")))[0]["image"]
    via_dataset = CXRDataset(table, indices=[0], size=64, crop="lungs")[0]["image"]
    plain = FilmFiles([path], FilmPrep(64, "squash"))[0]["image"]
    np.testing.assert_allclose(via_predict.numpy(), via_dataset.numpy())
    assert not np.allclose(via_predict.numpy(), plain.numpy())
