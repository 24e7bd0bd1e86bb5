"""PNG and JPEG films: 8/16-bit grey, colour and palette to grey, EXIF orientation."""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from cxrkit.io import read_image, read_image_bytes

NIH_PNG = "00000001_000.png"


def _pil_grey(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("L"), dtype=np.float32) / 255


def _save(tmp_path: Path, name: str, im: Image.Image, **kw: object) -> Path:
    path = tmp_path / name
    im.save(path, **kw)
    return path


def test_real_8bit_png_matches_pillow(samples_dir: Path) -> None:
    path = samples_dir / NIH_PNG
    image, meta = read_image(path)
    expected = _pil_grey(path)
    assert image.dtype == np.float32 and image.flags.writeable
    assert image.shape == expected.shape == meta.original_size
    np.testing.assert_array_equal(image, expected)
    assert 0.0 <= image.min() < 0.1 and 0.9 < image.max() <= 1.0
    assert (meta.format, meta.bit_depth, meta.photometric) == ("png", 8, "L")
    assert meta.path == str(path)
    assert (meta.inverted, meta.pixel_spacing, meta.modality) == (False, None, None)


def test_format_comes_from_content_not_name(samples_dir: Path, tmp_path: Path) -> None:
    renamed = tmp_path / "film.jpg"
    renamed.write_bytes((samples_dir / NIH_PNG).read_bytes())
    image, meta = read_image(renamed)
    assert meta.format == "png"
    np.testing.assert_array_equal(image, _pil_grey(samples_dir / NIH_PNG))


def test_read_image_bytes_equals_read_image(samples_dir: Path) -> None:
    path = samples_dir / "16747_3_1.jpg"
    from_path, _ = read_image(path)
    from_bytes, meta = read_image_bytes(path.read_bytes(), name="upload.jpg")
    np.testing.assert_array_equal(from_path, from_bytes)
    assert meta.path == "upload.jpg" and meta.format == "jpeg"


def test_16bit_png_is_scaled_by_65535(samples_dir: Path, tmp_path: Path) -> None:
    grey8 = np.asarray(Image.open(samples_dir / NIH_PNG))
    grey16 = grey8.astype(np.uint16) * 257  # 255 -> 65535
    path = _save(tmp_path, "film16.png", Image.fromarray(grey16))
    image, meta = read_image(path)
    assert (meta.bit_depth, meta.photometric) == (16, "I;16")
    np.testing.assert_allclose(image, grey8 / 255, atol=1e-6)


def test_12bit_values_in_16bit_png_stay_dark(tmp_path: Path) -> None:
    """Documented: no guessing of significant bits; 4095 in a 16-bit PNG reads as 4095/65535."""
    values = np.array([[0, 1000], [2000, 4095]], dtype=np.uint16)
    values = values.repeat(8, axis=0).repeat(8, axis=1)  # 16 px a side: the reader's minimum
    image, _ = read_image(_save(tmp_path, "twelve.png", Image.fromarray(values)))
    np.testing.assert_allclose(image, values / 65535, rtol=1e-6)


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "LA"])
def test_grey_stored_as_colour_reads_back_unchanged(
    samples_dir: Path, tmp_path: Path, mode: str
) -> None:
    grey = Image.open(samples_dir / NIH_PNG).convert("L")
    path = _save(tmp_path, f"film_{mode}.png", grey.convert(mode))
    image, meta = read_image(path)
    assert meta.photometric == mode and meta.bit_depth == 8
    np.testing.assert_array_equal(image, np.asarray(grey) / np.float32(255))


def test_colour_becomes_luma(tmp_path: Path) -> None:
    rgb = np.zeros((2, 3, 3), dtype=np.uint8)
    rgb[0, 0] = (255, 0, 0)
    rgb[0, 1] = (0, 255, 0)
    rgb[0, 2] = (0, 0, 255)
    rgb[1, :] = (255, 255, 255)
    rgb = rgb.repeat(8, axis=0).repeat(8, axis=1)  # 16 px a side: the reader's minimum
    image, _ = read_image(_save(tmp_path, "colours.png", Image.fromarray(rgb)))
    image = image[::8, ::8]
    np.testing.assert_allclose(image[0], [0.299, 0.587, 0.114], atol=1 / 255)
    np.testing.assert_array_equal(image[1], 1.0)


def test_palette_png_uses_palette_colours(samples_dir: Path, tmp_path: Path) -> None:
    grey = np.asarray(Image.open(samples_dir / NIH_PNG))
    indices = 255 - grey  # index i shows grey level 255 - i
    palette = Image.frombytes("P", (indices.shape[1], indices.shape[0]), indices.tobytes())
    palette.putpalette([v for i in range(256) for v in (255 - i,) * 3])
    image, meta = read_image(_save(tmp_path, "palette.png", palette))
    assert meta.photometric == "P"
    np.testing.assert_array_equal(image, grey / np.float32(255))


def test_real_rgb_png_and_jpeg(samples_dir: Path) -> None:
    for path in (samples_dir / "tbx11k/imgs/tb/tb0005.png", samples_dir / "16747_3_1.jpg"):
        image, meta = read_image(path)
        assert meta.photometric == "RGB"
        np.testing.assert_array_equal(image, _pil_grey(path))


def test_8bit_jpeg_is_close_to_its_source(samples_dir: Path, tmp_path: Path) -> None:
    grey = Image.open(samples_dir / NIH_PNG)
    path = _save(tmp_path, "film.jpg", grey, quality=95)
    image, meta = read_image(path)
    assert (meta.format, meta.bit_depth, meta.photometric) == ("jpeg", 8, "L")
    error = np.abs(image - np.asarray(grey) / 255)
    assert error.mean() < 0.005 and error.max() < 0.1


@pytest.mark.parametrize(
    ("orientation", "expected"),
    [
        (1, lambda a: a),
        (3, lambda a: np.rot90(a, 2)),
        (6, lambda a: np.rot90(a, -1)),  # stored rotated: display turns it 90 degrees clockwise
        (8, lambda a: np.rot90(a, 1)),
    ],
)
def test_jpeg_exif_orientation_is_applied(
    tmp_path: Path, orientation: int, expected: Callable[[np.ndarray], np.ndarray]
) -> None:
    stored = np.zeros((48, 80), dtype=np.uint8)  # landscape, bright block top-left
    stored[:16, :32] = 255
    stored[32:, 40:] = 128
    exif = Image.Exif()
    exif[0x0112] = orientation
    buffer = io.BytesIO()
    Image.fromarray(stored).save(buffer, format="JPEG", quality=100, exif=exif.tobytes())
    image, meta = read_image_bytes(buffer.getvalue(), name="phone.jpg")
    want = expected(stored) / 255
    assert image.shape == want.shape == meta.original_size
    assert np.abs(image - want).mean() < 0.02


def test_kermany_and_nih_films_read(kermany_dir: Path, nih_dir: Path) -> None:
    for folder in (kermany_dir, nih_dir):
        with open(folder / "labels.csv", newline="") as handle:
            rows = [row["path"] for row in itertools.islice(csv.DictReader(handle), 5)]
        for rel in rows:
            image, meta = read_image(folder / rel)
            assert image.dtype == np.float32 and image.ndim == 2
            assert meta.original_size == image.shape and meta.format == "png"
            assert 0.0 <= image.min() < image.max() <= 1.0


def test_reading_does_not_enable_pillow_truncated_loading(samples_dir: Path) -> None:
    read_image(samples_dir / NIH_PNG)
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
