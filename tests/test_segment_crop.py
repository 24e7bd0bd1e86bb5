"""crop_to_lungs, the `crop` option of configs, datasets and the decode cache."""

from __future__ import annotations

import numpy as np
import pytest

from cxrkit.errors import CxrkitError
from cxrkit.segment.crop import apply_crop, check_crop, crop_to_lungs, lung_bbox


def _image_and_mask() -> tuple[np.ndarray, np.ndarray]:
    image = np.arange(100 * 80, dtype=np.float32).reshape(100, 80)  # every pixel unique
    mask = np.zeros((100, 80), dtype=bool)
    mask[20:60, 10:30] = True
    mask[25:70, 45:65] = True
    return image, mask


def test_crop_contains_the_mask_box_plus_margin() -> None:
    image, mask = _image_and_mask()
    box = lung_bbox(mask, margin=0.1)
    assert box == (15, 75, 4, 71)  # rows 20..70 (50) +-5, cols 10..65 (55) +-6 (rounded)
    out = crop_to_lungs(image, mask, margin=0.1)
    assert out.shape == (60, 67)
    np.testing.assert_array_equal(out, image[15:75, 4:71])
    tight = crop_to_lungs(image, mask, margin=0.0)
    np.testing.assert_array_equal(tight, image[20:70, 10:65])
    assert mask[20:70, 10:65].sum() == mask.sum()


def test_crop_clips_at_the_border_and_keeps_empty_masks_whole() -> None:
    image, _ = _image_and_mask()
    edge = np.zeros_like(image, dtype=bool)
    edge[0:90, 0:80] = True
    assert crop_to_lungs(image, edge, margin=0.5).shape == image.shape
    assert crop_to_lungs(image, np.zeros_like(edge)).shape == image.shape
    with pytest.raises(ValueError):
        lung_bbox(edge, margin=-1)


def test_mask_of_another_size_is_scaled_to_the_image() -> None:
    image, mask = _image_and_mask()
    big = np.kron(image, np.ones((2, 2), np.float32))  # 200 x 160
    out = crop_to_lungs(big, mask, margin=0.0)
    assert out.shape == (100, 110)
    np.testing.assert_array_equal(out, big[40:140, 20:130])


def test_crop_names_are_checked() -> None:
    check_crop(None)
    check_crop("lungs")
    with pytest.raises(ValueError):
        check_crop("heart")
    image, _ = _image_and_mask()
    assert apply_crop(image, None) is image


def test_train_config_accepts_only_known_crops() -> None:
    from cxrkit.train import load_config

    assert load_config(None, {"crop": "lungs"}).crop == "lungs"
    assert load_config(None, {}).crop is None
    with pytest.raises(CxrkitError):
        load_config(None, {"crop": "heart"})


def test_decode_cache_key_includes_the_crop(tmp_path) -> None:
    from cxrkit.data.cache import DecodeCache
    from cxrkit.segment.crop import FilmCrop

    plain = DecodeCache(tmp_path, 64, "squash")
    cropped = DecodeCache(tmp_path, 64, "squash", crop=FilmCrop("lungs"))
    assert plain.entry_dir != cropped.entry_dir
    assert "crop-lungs" in cropped.entry_dir.name
    assert DecodeCache(tmp_path, 64, "squash", crop=FilmCrop()).entry_dir == plain.entry_dir
    with pytest.raises(TypeError, match="FilmCrop"):  # names are resolved by the crop's owner
        DecodeCache(tmp_path, 64, "squash", crop="lungs")
