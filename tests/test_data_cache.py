"""DecodeCache: decode once, hit afterwards, re-decode when the file changes."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cxrkit.data.cache as cache_mod
import cxrkit.io
from cxrkit.data import DecodeCache
from cxrkit.errors import ImageReadError


def make_gradient_png(path: Path, shift: int = 0) -> Path:
    """A 40x30 8-bit film with a horizontal gradient (plus `shift`)."""
    row = (np.arange(40, dtype=np.int64) * 6 + shift) % 256
    Image.fromarray(np.tile(row, (30, 1)).astype(np.uint8), mode="L").save(path)
    return path


@pytest.fixture
def reader_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Count calls to cxrkit.io.read_image (the only decoder the cache uses)."""
    calls: list[str] = []
    real = cxrkit.io.read_image

    def counting(path, *args, **kwargs):
        calls.append(str(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(cxrkit.io, "read_image", counting)
    return calls


@pytest.fixture
def hash_calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    calls: list[str] = []
    real = cache_mod.file_sha256

    def counting(path):
        calls.append(str(path))
        return real(path)

    monkeypatch.setattr(cache_mod, "file_sha256", counting)
    return calls


def test_second_load_decodes_nothing(
    tmp_path: Path, reader_calls: list[str], hash_calls: list[str]
) -> None:
    film = make_gradient_png(tmp_path / "film.png")
    cache = DecodeCache(tmp_path / "cache", size=32)
    first = cache.load(film)
    assert first.dtype == np.float32 and first.shape == (32, 32)
    assert first.min() >= 0.0 and first.max() <= 1.0
    assert (cache.hits, cache.misses) == (0, 1) and len(reader_calls) == 1
    second = cache.load(film)
    assert (cache.hits, cache.misses) == (1, 1) and len(reader_calls) == 1
    np.testing.assert_array_equal(first, second)
    assert len(hash_calls) == 1  # in-memory stat index
    # A fresh instance (another worker or run) neither decodes nor re-hashes.
    fresh = DecodeCache(tmp_path / "cache", size=32)
    np.testing.assert_array_equal(fresh.load(film), first)
    assert (fresh.hits, fresh.misses) == (1, 0)
    assert len(reader_calls) == 1 and len(hash_calls) == 1
    # The decode matches reading directly (uint16 storage is exact for 8-bit films).
    image, _ = cxrkit.io.read_image(film)
    direct = cxrkit.io.resize_film(image, 32, mode="squash")
    assert np.abs(direct - first).max() < 1e-4
    entries = list((tmp_path / "cache").glob("32-squash-v*/*.npy"))
    assert len(entries) == 1 and len(entries[0].stem) == 64


def test_modified_file_is_decoded_again(tmp_path: Path, reader_calls: list[str]) -> None:
    film = make_gradient_png(tmp_path / "film.png")
    cache = DecodeCache(tmp_path / "cache", size=16)
    before = cache.load(film)
    make_gradient_png(film, shift=100)
    st = film.stat()
    os.utime(film, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    after = cache.load(film)
    assert cache.misses == 2 and len(reader_calls) == 2
    assert not np.allclose(before, after)
    assert len(list((tmp_path / "cache").glob("16-squash-*/*.npy"))) == 2


def test_key_is_content_size_and_mode(tmp_path: Path, reader_calls: list[str]) -> None:
    film = make_gradient_png(tmp_path / "film.png")
    copy = tmp_path / "renamed.png"
    shutil.copy(film, copy)
    cache = DecodeCache(tmp_path / "cache", size=16)
    cache.load(film)
    cache.load(copy)  # same bytes, other name: a hit
    assert (cache.hits, cache.misses) == (1, 1)
    padded = DecodeCache(tmp_path / "cache", size=16, resize_mode="pad")
    padded.load(film)
    bigger = DecodeCache(tmp_path / "cache", size=24)
    assert bigger.load(film).shape == (24, 24)
    assert (padded.misses, bigger.misses) == (1, 1) and len(reader_calls) == 3


def test_unreadable_file_raises_and_is_not_cached(tmp_path: Path) -> None:
    bad = tmp_path / "bad.png"
    bad.write_text("this is not an image")
    cache = DecodeCache(tmp_path / "cache", size=16)
    with pytest.raises(ImageReadError):
        cache.load(bad)
    assert cache.misses == 0
    assert not list((tmp_path / "cache").glob("16-*/*.npy"))
    with pytest.raises(ImageReadError, match="file not found"):
        cache.load(tmp_path / "deleted.png")
    with pytest.raises(ValueError, match="resize mode"):
        DecodeCache(tmp_path / "cache", size=16, resize_mode="stretch")


def test_damaged_cache_entry_is_rebuilt(tmp_path: Path) -> None:
    film = make_gradient_png(tmp_path / "film.png")
    cache = DecodeCache(tmp_path / "cache", size=16)
    good = cache.load(film)
    cache.entry_path(film).write_bytes(b"garbage")
    np.testing.assert_array_equal(cache.load(film), good)
    assert cache.misses == 2
