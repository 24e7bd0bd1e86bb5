"""DICOM films: polarity, modality and VOI transforms, compressed transfer syntaxes, metadata."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pydicom.pixels import apply_modality_lut, apply_voi_lut
from pydicom.uid import UID, JPEG2000Lossless, RLELossless

from cxrkit.io import read_image
from dicom_factory import (
    compress,
    encapsulate_jpeg_baseline,
    make_dataset,
    png_pixels,
    save,
    write_dicom,
)

SIIM_DCM = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"
FAKE_MONO1 = "Fake_MONOHR1.dcm"


@pytest.fixture(scope="module")
def film(samples_dir: Path) -> np.ndarray:
    """A real NIH film as uint8, downsized to 256x256 to keep encoding fast."""
    return png_pixels(samples_dir / "00000001_000.png", size=256)


def _min_max(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return (values - values.min()) / (values.max() - values.min())


def test_real_siim_cr_and_its_monochrome1_twin_are_inverses(samples_dir: Path) -> None:
    mono2, meta2 = read_image(samples_dir / SIIM_DCM)
    mono1, meta1 = read_image(samples_dir / FAKE_MONO1)
    assert mono2.dtype == np.float32 and mono2.shape == (1024, 1024)
    assert mono2.min() == 0.0 and mono2.max() == 1.0
    np.testing.assert_allclose(mono2, 1.0 - mono1, atol=1e-6)
    assert (meta2.photometric, meta2.inverted) == ("MONOCHROME2", False)
    assert (meta1.photometric, meta1.inverted) == ("MONOCHROME1", True)
    for meta in (meta1, meta2):
        assert (meta.format, meta.modality, meta.bit_depth) == ("dicom", "CR", 8)
        assert meta.original_size == (1024, 1024)
        assert meta.pixel_spacing == pytest.approx((0.168, 0.168))


def test_real_siim_cr_is_bright_bone_dark_air(samples_dir: Path) -> None:
    """MONOCHROME2 chest film: the lung fields (centre left/right) are darker than the spine."""
    image, _ = read_image(samples_dir / SIIM_DCM)
    h, w = image.shape
    band = image[h // 3 : h // 2]
    lungs = np.r_[band[:, w // 5 : w // 3], band[:, -w // 3 : -w // 5]]
    spine = band[:, w // 2 - w // 40 : w // 2 + w // 40]
    assert lungs.mean() < spine.mean()


def test_16bit_rescale_and_window_map_to_unit_range(film: np.ndarray, tmp_path: Path) -> None:
    stored = film.astype(np.uint16) * 16  # 12-bit values in 16-bit words
    slope, intercept = 2.0, -1000.0
    low, high = intercept, 4095 * slope + intercept  # the window spans the full 12-bit range
    ds = make_dataset(
        stored,
        bits_stored=12,
        rescale=(slope, intercept),
        window=((low + high) / 2 + 0.5, high - low + 1),
        pixel_spacing=(0.143, 0.139),
    )
    image, meta = read_image(save(ds, tmp_path / "rescaled.dcm"))
    np.testing.assert_allclose(image, stored / 4095, atol=1e-5)
    assert (meta.bit_depth, meta.photometric, meta.inverted) == (12, "MONOCHROME2", False)
    assert meta.pixel_spacing == pytest.approx((0.143, 0.139))


@pytest.mark.parametrize("function", ["LINEAR", "LINEAR_EXACT", "SIGMOID"])
def test_window_matches_pydicom_apply_voi_lut(
    film: np.ndarray, tmp_path: Path, function: str
) -> None:
    """A narrow window clips; our float32 windowing equals pydicom's, rescaled to [0, 1]."""
    stored = film.astype(np.uint16) * 16
    ds = make_dataset(
        stored, bits_stored=12, rescale=(1.0, -1024.0), window=(600, 1500), voi_function=function
    )
    image, _ = read_image(save(ds, tmp_path / f"{function}.dcm"))
    reference = apply_voi_lut(apply_modality_lut(stored, ds), ds)
    y_min, y_max = -1024.0, 4095 - 1024.0  # pydicom's output range for this dataset
    np.testing.assert_allclose(image, (reference - y_min) / (y_max - y_min), atol=1e-5)
    if function != "SIGMOID":
        assert (image == 0).any() and (image == 1).any()


@pytest.mark.parametrize("lut_dtype", [np.uint8, np.uint16])
def test_voi_lut_sequence_is_applied(
    film: np.ndarray, tmp_path: Path, lut_dtype: type[np.unsignedinteger]
) -> None:
    """4096-entry LUT (8- or 16-bit entries); pydicom 3.0's apply_voi wraps 8-bit ones."""
    stored = film.astype(np.uint16) * 16
    top = np.iinfo(lut_dtype).max
    lut = (np.sqrt(np.arange(4096) / 4095) * top).round().astype(lut_dtype)  # a gamma curve
    ds = make_dataset(stored, bits_stored=12, voi_lut=lut, window=(100, 10))  # LUT wins
    image, _ = read_image(save(ds, tmp_path / "lut.dcm"))
    np.testing.assert_allclose(image, lut[stored] / top, atol=1e-6)


def test_monochrome1_16bit_is_inverted(film: np.ndarray, tmp_path: Path) -> None:
    stored = (4095 - film.astype(np.uint16) * 16).astype(np.uint16)  # bright = air
    path = write_dicom(tmp_path / "mono1.dcm", stored, photometric="MONOCHROME1", bits_stored=12)
    image, meta = read_image(path)
    assert meta.inverted and meta.photometric == "MONOCHROME1"
    np.testing.assert_allclose(image, _min_max(film), atol=1e-6)


def test_monochrome1_with_window_is_inverted_after_windowing(
    film: np.ndarray, tmp_path: Path
) -> None:
    stored = 255 - film
    path = write_dicom(tmp_path / "m1w.dcm", stored, photometric="MONOCHROME1", window=(128, 256))
    image, _ = read_image(path)
    np.testing.assert_allclose(image, film / 255, atol=1e-6)


@pytest.mark.parametrize("syntax", [None, RLELossless, JPEG2000Lossless], ids=["raw", "rle", "j2k"])
@pytest.mark.parametrize("sixteen_bit", [False, True], ids=["8bit", "16bit"])
def test_lossless_syntaxes_decode_exactly(
    film: np.ndarray, tmp_path: Path, syntax: UID | None, sixteen_bit: bool
) -> None:
    stored = film.astype(np.uint16) * 16 if sixteen_bit else film
    ds = make_dataset(stored, bits_stored=12 if sixteen_bit else 8)
    if syntax is not None:
        compress(ds, syntax)
    path = save(ds, tmp_path / "film.dcm")
    image, meta = read_image(path)
    np.testing.assert_allclose(image, _min_max(film), atol=1e-6)  # min-max: no VOI given
    assert meta.bit_depth == (12 if sixteen_bit else 8)


def test_jpeg_baseline_decodes_close_to_source(film: np.ndarray, tmp_path: Path) -> None:
    ds = encapsulate_jpeg_baseline(make_dataset(film, window=(127.5, 256)), film)
    image, meta = read_image(save(ds, tmp_path / "jpeg.dcm"))
    error = np.abs(image - film / 255)
    assert error.mean() < 0.01 and error.max() < 0.15
    assert meta.photometric == "MONOCHROME2"


def test_dx_imager_pixel_spacing_and_missing_modality(film: np.ndarray, tmp_path: Path) -> None:
    _, dx = read_image(
        write_dicom(tmp_path / "dx.dcm", film, modality="DX", imager_pixel_spacing=(0.2, 0.2))
    )
    assert dx.modality == "DX" and dx.pixel_spacing == pytest.approx((0.2, 0.2))
    image, unknown = read_image(write_dicom(tmp_path / "none.dcm", film, modality=None))
    assert unknown.modality is None and unknown.pixel_spacing is None
    np.testing.assert_allclose(image, _min_max(film), atol=1e-6)


def test_rgb_dicom_becomes_grey(film: np.ndarray, tmp_path: Path) -> None:
    rgb = np.repeat(film[..., None], 3, axis=2)
    image, meta = read_image(write_dicom(tmp_path / "rgb.dcm", rgb, photometric="RGB"))
    assert meta.photometric == "RGB" and image.shape == film.shape
    np.testing.assert_allclose(image, film / 255, atol=1e-6)


def test_bare_dicom_without_preamble_reads(film: np.ndarray, tmp_path: Path) -> None:
    path = save(make_dataset(film), tmp_path / "bare.dcm", preamble=False)
    assert path.read_bytes()[128:132] != b"DICM"
    image, meta = read_image(path)
    assert meta.format == "dicom"
    np.testing.assert_allclose(image, _min_max(film), atol=1e-6)


def test_colour_jpeg_dicom_becomes_grey(film: np.ndarray, tmp_path: Path) -> None:
    """Secondary-capture style: an RGB film JPEG-compressed as YBR_FULL_422."""
    rgb = np.repeat(film[..., None], 3, axis=2)
    ds = encapsulate_jpeg_baseline(make_dataset(rgb, photometric="RGB"), rgb)
    ds.PhotometricInterpretation = "YBR_FULL_422"
    image, meta = read_image(save(ds, tmp_path / "ybr.dcm"))
    assert meta.photometric == "YBR_FULL_422" and image.shape == film.shape
    assert np.abs(image - film / 255).mean() < 0.01
