"""The shipped polarity model: loads offline, small, right on held-out shared films."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrkit.card import Preprocessing
from cxrkit.io import read_image
from cxrkit.polarity import load_polarity_model, polarity_of
from cxrkit.polarity.model import DEFAULT_MODEL
from polarity_films import held_out_films, read_all

PER_SOURCE = {"kermany_pneumonia": 110, "nih1000": 70, "covid_lungmasks": 14, "samples": 6}


@pytest.fixture(scope="module")
def model():
    return load_polarity_model()


def test_shipped_model_is_small_and_self_describing(model) -> None:
    assert DEFAULT_MODEL.is_file() and DEFAULT_MODEL.stat().st_size < 2 * 1024 * 1024
    assert (DEFAULT_MODEL.parent / "MODEL_CARD.md").is_file()
    card = model.card
    assert card.class_names == ("positive", "negative", "not_cxr")
    assert card.preprocessing == Preprocessing(size=64, resize_mode="squash", channels="grayscale")
    points = card.operating_points
    assert 0.5 <= points["not_cxr"] < 1 and points["fix"] >= 0.5
    assert card.metrics["polarity"]["all"]["accuracy"] >= 0.995
    assert load_polarity_model() is model  # the default is loaded once


def test_accuracy_on_held_out_shared_films_both_ways(model, shared_data: Path) -> None:
    refs = held_out_films(shared_data, PER_SOURCE)
    assert len(refs) >= 190 and {r.source for r in refs} == set(PER_SOURCE)
    films = np.stack([model.prepare(im) for im in read_all(refs)])
    p_pos, p_neg = model.probs(films), model.probs(1.0 - films)
    right = np.r_[p_pos[:, 0] > p_pos[:, 1], p_neg[:, 1] > p_neg[:, 0]]
    assert right.mean() >= 0.99, [r.path.name for r, ok in zip(refs, right, strict=False) if not ok]


def test_dicom_with_a_wrong_photometric_tag_is_caught(model, samples_dir: Path) -> None:
    right, _ = read_image(
        samples_dir / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
    )
    wrong, meta = read_image(samples_dir / "Fake_MONOHR1.dcm")
    assert meta.photometric == "MONOCHROME1" and meta.inverted  # the reader trusted the tag
    p = model.image_probs([right, wrong])
    assert polarity_of(p[0])[0] == "positive"
    polarity, prob = polarity_of(p[1])
    assert polarity == "negative" and prob >= model.fix_threshold


def test_colour_stored_and_jpeg_films_are_positive(model, samples_dir: Path) -> None:
    names = ["16747_3_1.jpg", "tbx11k/imgs/tb/tb0007.png", "tbx11k/imgs/health/h0001.png"]
    images = [read_image(samples_dir / n)[0] for n in names]
    p = model.image_probs(images + [1.0 - im for im in images])
    got = [polarity_of(row)[0] for row in p]
    assert got == ["positive"] * 3 + ["negative"] * 3
