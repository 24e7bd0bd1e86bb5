"""resize_film: squash, letterbox pad and centre crop to a float32 square."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrkit.io import RESIZE_MODES, read_image, resize_film


def _thirds(height: int, width: int) -> np.ndarray:
    """Landscape film whose left, centre and right thirds are 0.2, 0.5 and 0.8."""
    image = np.full((height, width), 0.5, dtype=np.float32)
    image[:, : width // 3] = 0.2
    image[:, 2 * width // 3 :] = 0.8
    return image


@pytest.mark.parametrize("mode", RESIZE_MODES)
@pytest.mark.parametrize("shape", [(300, 200), (200, 300), (64, 64), (1, 5)])
def test_every_mode_gives_float32_square(mode: str, shape: tuple[int, int]) -> None:
    out = resize_film(np.full(shape, 0.75, dtype=np.float32), 96, mode)
    assert out.shape == (96, 96) and out.dtype == np.float32 and out.flags.writeable
    assert out.max() == pytest.approx(0.75, abs=1e-6)


def test_squash_keeps_content_and_range() -> None:
    out = resize_film(_thirds(150, 300), 60, "squash")
    np.testing.assert_allclose(out[:, :15], 0.2, atol=1e-6)
    np.testing.assert_allclose(out[:, 25:35], 0.5, atol=1e-6)
    np.testing.assert_allclose(out[:, -15:], 0.8, atol=1e-6)


def test_pad_letterboxes_with_black() -> None:
    out = resize_film(np.ones((100, 200), dtype=np.float32), 224, "pad")
    rows = np.flatnonzero(out.max(axis=1) > 0)
    assert (rows[0], rows[-1]) == (56, 167)  # 112 film rows centred in 224
    np.testing.assert_array_equal(out[:56], 0.0)
    np.testing.assert_array_equal(out[168:], 0.0)
    np.testing.assert_allclose(out[56:168], 1.0, atol=1e-6)


def test_crop_keeps_the_centre_square() -> None:
    out = resize_film(_thirds(100, 300), 50, "crop")
    np.testing.assert_allclose(out[:, 2:-2], 0.5, atol=1e-6)
    assert abs(out.mean() - 0.5) < 0.01


def test_downscaling_averages_like_area_resampling(samples_dir: Path) -> None:
    """No aliasing: a 512 -> 64 reduction is close to 8x8 block means of the real film."""
    image, _ = read_image(samples_dir / "00000001_000.png")
    out = resize_film(image, 64)
    h, w = image.shape
    block_means = image.reshape(64, h // 64, 64, w // 64).mean(axis=(1, 3))
    assert np.abs(out - block_means).mean() < 0.01


def test_returns_a_new_array_and_accepts_other_dtypes() -> None:
    image = np.linspace(0, 1, 64 * 64).reshape(64, 64)  # float64
    out = resize_film(image, 64)
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, image, atol=1e-6)
    source = image.astype(np.float32)
    same = resize_film(source, 64, "crop")
    same[0, 0] = -1.0
    assert source[0, 0] == 0.0


@pytest.mark.parametrize(
    ("image", "size", "mode", "match"),
    [
        (np.zeros((8, 8)), 4, "stretch", "mode"),
        (np.zeros((8, 8)), 0, "squash", "size"),
        (np.zeros((8, 8, 3)), 4, "squash", "2-D"),
        (np.zeros((0, 8)), 4, "squash", "2-D"),
    ],
)
def test_bad_arguments_raise_value_error(
    image: np.ndarray, size: int, mode: str, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        resize_film(image, size, mode)
