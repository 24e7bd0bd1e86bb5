"""Screening at decoding speed: reduced-size JPEG decoding, the decode cache, worker order."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cxrkit.io import read_image, resize_film
from cxrkit.polarity import check_paths, load_polarity_model
from cxrkit.polarity.decode import small_film_batches

JPEG = "covid-19-pneumonia-58-prior.jpg"  # 2373 px a side


def test_draft_decodes_a_jpeg_smaller_and_keeps_its_size(samples_dir: Path) -> None:
    full, meta = read_image(samples_dir / JPEG)
    small, small_meta = read_image(samples_dir / JPEG, draft=64)
    assert min(small.shape) >= 64 and small.size * 16 <= full.size  # 1/4 a side or less
    assert small_meta.original_size == meta.original_size == full.shape
    a, b = resize_film(full, 64, "squash"), resize_film(small, 64, "squash")
    assert float(np.abs(a - b).mean()) < 0.01  # the same film at the net's size
    png = samples_dir / "00000001_000.png"  # other formats ignore draft
    assert read_image(png, draft=64)[0].shape == read_image(png)[0].shape


def test_check_paths_through_the_cache_in_order(tmp_path: Path, samples_dir: Path) -> None:
    model = load_polarity_model()
    films = [
        samples_dir / JPEG,
        samples_dir / "00000001_000.png",
        tmp_path / "missing.png",
        samples_dir / "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm",
    ]
    plain = list(check_paths(films, model, batch_size=3, num_workers=0))
    cold = list(check_paths(films, model, batch_size=3, num_workers=2, cache_dir=tmp_path / "c"))
    warm = list(check_paths(films, model, batch_size=3, num_workers=2, cache_dir=tmp_path / "c"))
    assert [r["path"] for r in cold] == [str(p) for p in films]
    assert "error" in cold[2] and "error" not in cold[0]
    entries = list((tmp_path / "c").glob("64-squash-draft-*/*.npy"))
    assert len(entries) == 3  # the three readable films, decoded once
    for a, b, c in zip(plain, cold, warm, strict=True):
        assert a.get("polarity") == b.get("polarity") == c.get("polarity")
        if "probability" in a:  # the cache stores 16-bit films: the same to ~1e-4
            assert abs(a["probability"] - c["probability"]) < 1e-3


def test_batches_stack_good_films_and_keep_errors(tmp_path: Path, samples_dir: Path) -> None:
    paths = [samples_dir / "00000001_000.png", tmp_path / "nope.png"]
    (batch,) = small_film_batches(paths, 32, batch_size=8, num_workers=0)
    assert batch["films"].shape == (1, 32, 32) and batch["films"].dtype == np.float32
    assert batch["index"] == [0] and batch["errors"][0][0] == 1 and batch["order"] == [0, 1]
