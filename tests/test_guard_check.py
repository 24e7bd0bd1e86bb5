"""Not-a-chest-film guard: quiet on real films (either polarity), loud on everything else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrkit.guard import GuardResult, check_film, check_films
from cxrkit.polarity.synth import make_examples
from polarity_films import held_out_films, read_all

PER_SOURCE = {"kermany_pneumonia": 40, "nih1000": 30, "covid_lungmasks": 14, "samples": 6}


def test_real_films_pass_in_both_polarities(shared_data: Path) -> None:
    images = read_all(held_out_films(shared_data, PER_SOURCE))
    results = check_films(images + [1.0 - im for im in images])
    assert all(isinstance(r, GuardResult) for r in results)
    alarms = [r for r in results if not r.is_cxr]
    assert len(alarms) / len(results) <= 0.02, [r.reason for r in alarms]
    assert np.median([r.score for r in results]) > 0.9


def test_held_out_generated_non_films_are_flagged(shared_data: Path) -> None:
    films = np.stack(
        [
            np.round(im[:: max(1, im.shape[0] // 128)] * 255).astype(np.uint8)[:128, :128]
            for im in read_all(held_out_films(shared_data, {"kermany_pneumonia": 10}))
        ]
    )
    # the test family: other photos, fonts, layouts, anatomy; a seed the training never used
    images, kinds = make_examples("test", 6, seed=98765, size=192, films=films)
    results = check_films([im.astype(np.float32) / 255 for im in images])
    flagged = np.array([not r.is_cxr for r in results])
    assert flagged.mean() >= 0.9, {k: flagged[np.array(kinds) == k].mean() for k in set(kinds)}
    assert all(r.reason for r, f in zip(results, flagged, strict=True) if f)


def test_a_photograph_is_not_a_chest_film() -> None:
    import skimage.data

    for photo in (skimage.data.camera(), skimage.data.coffee()):  # uint8 gray, uint8 RGB
        result = check_film(photo)
        assert not result.is_cxr and "chest film" in result.reason


@pytest.mark.parametrize(
    ("image", "reason"),
    [
        (np.random.default_rng(0).random((20, 20)), "too small"),
        (np.full((300, 300), 0.4), "blank"),
        (np.random.default_rng(0).random((100, 600)), "film-shaped"),
    ],
)
def test_rules_fire_before_the_model(image: np.ndarray, reason: str) -> None:
    result = check_film(image.astype(np.float32))
    assert not result.is_cxr and result.score == 0.0 and reason in result.reason


def test_corner_crops_of_full_size_films_are_flagged(samples_dir: Path) -> None:
    from cxrkit.io import read_image

    for name in ("00000001_000.png", "16747_3_1.jpg", "tbx11k/imgs/tb/tb0005.png"):
        image, _ = read_image(samples_dir / name)
        h, w = image.shape
        assert check_film(image).is_cxr
        for crop in (image[: h // 5, : w // 5], image[-h // 4 :, -w // 4 :]):
            assert not check_film(crop).is_cxr, name
