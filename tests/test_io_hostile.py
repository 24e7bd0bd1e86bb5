"""Hostile films: decoder panics, absurd windows and rescales, and the film contract."""

from __future__ import annotations

import os

import numpy as np
import pytest

import cxrkit.io.read as read_module
from bad_files import encode, hostile_window_dicom, noisy_film, rle_panic_dicom
from cxrkit.errors import (
    CorruptImageError,
    DecompressionBombError,
    FilmTooSmallError,
    ImageReadError,
)
from cxrkit.io import read_image, read_image_bytes
from cxrkit.io.contract import MIN_SIDE, check_film
from cxrkit.io.quiet import native_stderr_silenced
from dicom_factory import make_dataset


def _dicom_bytes(**tags: object) -> bytes:
    import io

    buffer = io.BytesIO()
    make_dataset(noisy_film(64), **tags).save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _assert_film(image: np.ndarray) -> None:
    assert image.dtype == np.float32 and image.ndim == 2
    assert np.isfinite(image).all()
    assert image.min() >= 0.0 and image.max() <= 1.0


def test_rle_decoder_panic_becomes_corrupt_image_error(tmp_path) -> None:
    """Regression (issue 11): pyo3's PanicException is a BaseException and escaped."""
    path = tmp_path / "panic.dcm"
    rle_panic_dicom(path)
    with pytest.raises(CorruptImageError) as info:
        read_image(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert "RLE Lossless" in message and "PanicException" in message


def test_stderr_is_restored_after_a_decoder_panic() -> None:
    before = os.fstat(2)
    with pytest.raises(CorruptImageError):
        read_image_bytes(rle_panic_dicom(), "panic.dcm")
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)


def test_nested_silencing_restores_fd2_once() -> None:
    before = os.fstat(2)
    with native_stderr_silenced(), native_stderr_silenced():
        assert os.fstat(2).st_ino == os.stat(os.devnull).st_ino
    assert os.fstat(2).st_ino == before.st_ino


class _OddPanic(BaseException):
    """Stands in for pyo3_runtime.PanicException."""


@pytest.mark.parametrize("raised", [_OddPanic("boom"), RecursionError("deep")])
def test_any_decoder_failure_becomes_corrupt_image_error(monkeypatch, raised) -> None:
    def explode(*_a: object) -> None:
        raise raised

    monkeypatch.setattr(read_module, "read_raster", explode)
    with pytest.raises(CorruptImageError, match="malformed PNG file"):
        read_image_bytes(encode(noisy_film(32), "PNG"), "x.png")


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit, GeneratorExit])
def test_interrupts_are_never_swallowed(monkeypatch, raised: type[BaseException]) -> None:
    def explode(*_a: object, **_kw: object) -> None:
        raise raised()

    monkeypatch.setattr(read_module, "read_raster", explode)
    with pytest.raises(raised):
        read_image_bytes(encode(noisy_film(32), "PNG"), "x.png")


HOSTILE_WINDOWS = [
    (1e308, 1e308, None),
    (1e308, 100.0, None),
    (40.0, 1e-30, None),
    (40.0, 1e-30, "LINEAR_EXACT"),
    (100.0, 1e-300, "LINEAR_EXACT"),
    (100.0, 1e-300, "SIGMOID"),
    (100.0, 1e308, "SIGMOID"),
    (-1e308, 1e308, "LINEAR_EXACT"),
    (float("nan"), 100.0, None),
    (100.0, float("inf"), None),
    (float("-inf"), float("nan"), "SIGMOID"),
]


@pytest.mark.parametrize(("center", "width", "function"), HOSTILE_WINDOWS)
def test_hostile_window_never_gives_nan(center: float, width: float, function: str | None) -> None:
    """Regression (issue 11): Window Center/Width 1e308 or width 1e-30 read as all NaN."""
    image, _ = read_image_bytes(hostile_window_dicom(center, width, function), "w.dcm")
    _assert_film(image)


@pytest.mark.parametrize(
    ("center", "width"), [(1e308, 1e308), (float("nan"), 100.0), (1e308, 100.0), (-5e3, 10.0)]
)
def test_unusable_window_falls_back_to_min_max(center: float, width: float) -> None:
    plain, _ = read_image_bytes(_dicom_bytes(), "plain.dcm")
    windowed, _ = read_image_bytes(hostile_window_dicom(center, width), "w.dcm")
    np.testing.assert_array_equal(windowed, plain)


@pytest.mark.parametrize(
    ("rescale", "words"),
    [
        ((float("inf"), 0.0), "Rescale Slope is inf"),
        ((1.0, float("nan")), "Rescale Intercept is nan"),
        ((1e308, 0.0), "overflow"),
        ((1.0, -1e308), "overflow"),
    ],
)
def test_hostile_rescale_is_a_clear_error(rescale: tuple[float, float], words: str) -> None:
    with pytest.raises(CorruptImageError, match=words):
        read_image_bytes(_dicom_bytes(rescale=rescale), "r.dcm")


@pytest.mark.parametrize("depth", [0, 40, 255])
def test_voi_lut_with_absurd_depth_stays_in_range(depth: int) -> None:
    import io

    ds = make_dataset(noisy_film(64), voi_lut=np.arange(256, dtype=np.uint16))
    ds.VOILUTSequence[0].LUTDescriptor = [256, 0, depth]
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    image, _ = read_image_bytes(buffer.getvalue(), "lut.dcm")
    _assert_film(image)


def test_contract_refuses_nan_and_out_of_range() -> None:
    film = np.full((32, 32), 0.5, np.float32)
    film[3, 4] = np.nan
    with pytest.raises(CorruptImageError, match="1 non-finite"):
        check_film(film, "f.png", 10**6)
    with pytest.raises(CorruptImageError, match="outside"):
        check_film(np.full((32, 32), 1.5, np.float32), "f.png", 10**6)


def test_contract_shape_dtype_size_and_pixel_limit() -> None:
    with pytest.raises(CorruptImageError, match="not 2-D"):
        check_film(np.zeros((32, 32, 3), np.float32), "f.png", 10**6)
    with pytest.raises(CorruptImageError, match="uint8"):
        check_film(np.zeros((32, 32), np.uint8), "f.png", 10**6)
    with pytest.raises(FilmTooSmallError, match=f"at least {MIN_SIDE}"):
        check_film(np.zeros((MIN_SIDE - 1, 64), np.float32), "f.png", 10**6)
    with pytest.raises(DecompressionBombError):
        check_film(np.zeros((64, 64), np.float32), "f.png", 1000)
    out = check_film(np.zeros((MIN_SIDE, MIN_SIDE), np.float64), "f.png", 10**6)
    assert out.dtype == np.float32


def test_every_contract_error_is_an_image_read_error() -> None:
    assert issubclass(FilmTooSmallError, ImageReadError)


def test_header_values_in_reasons_are_one_printable_line() -> None:
    """Fuzz finding: a damaged Modality value put raw control bytes into the message."""
    data = _dicom_bytes(Modality="C\nT\x05\x90" + "X" * 500)
    with pytest.raises(ImageReadError) as info:
        read_image_bytes(data, "m.dcm")
    reason = info.value.reason
    assert reason.isprintable() and "\n" not in reason and len(reason) < 200
    assert "\\x05" in reason
