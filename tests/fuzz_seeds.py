"""Seed films for fuzzing: small PNG/JPEG/DICOM films written here plus the real samples."""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.uid import JPEG2000Lossless, RLELossless

from bad_files import noisy_film
from dicom_factory import compress, encapsulate_jpeg_baseline, make_dataset


@dataclass(frozen=True)
class Seed:
    """A valid film to mutate: its name, kind ('png' | 'jpeg' | 'dicom') and bytes."""

    name: str
    kind: str
    data: bytes


def _dicom_bytes(ds: pydicom.Dataset) -> bytes:
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _png(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _jpeg(pixels: np.ndarray, **kw: Any) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", **kw)
    return buffer.getvalue()


def synthetic_seeds(size: int = 48) -> list[Seed]:
    """Small films written here: PNG 8/16-bit, JPEG, and DICOMs in every supported flavour."""
    grey = noisy_film(size)
    wide = grey.astype(np.uint16) * 16  # 12 bits stored in 16
    seeds = [
        Seed("png8", "png", _png(grey)),
        Seed("png16", "png", _png(wide * 16)),
        Seed("png_rgb", "png", _png(np.stack([grey] * 3, axis=-1))),
        Seed("jpeg", "jpeg", _jpeg(grey, quality=90)),
        Seed("jpeg_progressive", "jpeg", _jpeg(grey, progressive=True)),
        Seed("dcm_native8", "dicom", _dicom_bytes(make_dataset(grey))),
        Seed("dcm_native16", "dicom", _dicom_bytes(make_dataset(wide, bits_stored=12))),
        Seed(
            "dcm_mono1_window",
            "dicom",
            _dicom_bytes(
                make_dataset(wide, bits_stored=12, photometric="MONOCHROME1", window=(2000, 3000))
            ),
        ),
        Seed(
            "dcm_rescale_sigmoid",
            "dicom",
            _dicom_bytes(
                make_dataset(
                    wide,
                    bits_stored=12,
                    rescale=(2.0, -1024.0),
                    window=(0, 4000),
                    voi_function="SIGMOID",
                )
            ),
        ),
        Seed(
            "dcm_voi_lut",
            "dicom",
            _dicom_bytes(make_dataset(grey, voi_lut=np.arange(256, dtype=np.uint16)[::-1])),
        ),
        Seed("dcm_rle8", "dicom", _dicom_bytes(compress(make_dataset(grey), RLELossless))),
        Seed(
            "dcm_rle16",
            "dicom",
            _dicom_bytes(compress(make_dataset(wide, bits_stored=12), RLELossless)),
        ),
        Seed("dcm_j2k", "dicom", _dicom_bytes(compress(make_dataset(grey), JPEG2000Lossless))),
        Seed(
            "dcm_jpeg_baseline",
            "dicom",
            _dicom_bytes(encapsulate_jpeg_baseline(make_dataset(grey), grey)),
        ),
    ]
    return seeds


def sample_seeds(samples_dir: Path | None) -> list[Seed]:
    """The real files of shared/data/samples (NIH PNGs, PadChest/COVID JPEGs, SIIM DICOMs)."""
    if samples_dir is None or not samples_dir.is_dir():
        return []
    kinds = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg", ".dcm": "dicom"}
    return [
        Seed(f"real_{path.stem[:24]}", kinds[path.suffix.lower()], path.read_bytes())
        for path in sorted(samples_dir.iterdir())
        if path.suffix.lower() in kinds
    ]
