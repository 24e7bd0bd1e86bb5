"""Write test DICOM films with pydicom: uncompressed, RLE, JPEG 2000 and JPEG baseline."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    UID,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

CR_IMAGE_STORAGE = UID("1.2.840.10008.5.1.4.1.1.1")


def png_pixels(path: Path, size: int | None = None) -> np.ndarray:
    """The 8-bit grey pixels of a PNG, optionally downsized to size x size (keeps tests fast)."""
    with Image.open(path) as im:
        grey = im.convert("L")
        if size is not None:
            grey = grey.resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(grey).copy()


def make_dataset(
    pixels: np.ndarray,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    modality: str | None = "CR",
    rescale: tuple[float, float] | None = None,
    window: tuple[float, float] | None = None,
    voi_function: str | None = None,
    voi_lut: np.ndarray | None = None,
    voi_lut_first_mapped: int = 0,
    pixel_spacing: Sequence[float] | None = None,
    imager_pixel_spacing: Sequence[float] | None = None,
    **extra: Any,
) -> Dataset:
    """An uncompressed, little-endian explicit-VR dataset holding `pixels` (h, w), (n, h, w) or
    (h, w, 3) with the given tags. `rescale` is (slope, intercept), `window` (center, width),
    `voi_lut` a uint8/uint16 LUT; `extra` sets any further keyword (e.g. Rows=20000)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.SOPClassUID = CR_IMAGE_STORAGE
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.PatientID = "TEST"
    if modality is not None:
        ds.Modality = modality
    if bits_stored is None:
        bits_stored = 8 if pixels.dtype == np.uint8 else 16
    ds.set_pixel_data(pixels, photometric, bits_stored)
    if rescale is not None:
        ds.RescaleSlope, ds.RescaleIntercept = rescale
    if window is not None:
        ds.WindowCenter, ds.WindowWidth = window
    if voi_function is not None:
        ds.VOILUTFunction = voi_function
    if voi_lut is not None:
        item = Dataset()
        depth = 8 if voi_lut.dtype == np.uint8 else 16
        item.add_new("LUTDescriptor", "US", [len(voi_lut), voi_lut_first_mapped, depth])
        item.add_new("LUTData", "US", [int(v) for v in voi_lut])
        ds.VOILUTSequence = [item]
    if pixel_spacing is not None:
        ds.PixelSpacing = list(pixel_spacing)
    if imager_pixel_spacing is not None:
        ds.ImagerPixelSpacing = list(imager_pixel_spacing)
    for keyword, value in extra.items():
        setattr(ds, keyword, value)
    return ds


def compress(ds: Dataset, transfer_syntax: UID) -> Dataset:
    """Compress in place with pydicom's encoders (RLE Lossless, JPEG 2000 via openjpeg)."""
    ds.compress(transfer_syntax)
    return ds


def encapsulate_jpeg_baseline(ds: Dataset, pixels: np.ndarray, quality: int = 95) -> Dataset:
    """Replace the pixel data by a Pillow-encoded 8-bit JPEG baseline frame (lossy)."""
    buffer = io.BytesIO()
    Image.fromarray(pixels.astype(np.uint8)).save(buffer, format="JPEG", quality=quality)
    ds.PixelData = encapsulate([buffer.getvalue()])
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
    return ds


def save(ds: Dataset, path: Path, *, preamble: bool = True) -> Path:
    """Write `ds` to `path`: a standard Part 10 file, or a bare data set without preamble."""
    if preamble:
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.preamble = None
        ds.file_meta = FileMetaDataset()  # no group 0002 either: the file starts at (0008,xxxx)
        buffer = io.BytesIO()
        pydicom.dcmwrite(buffer, ds, enforce_file_format=False, implicit_vr=True)
        path.write_bytes(buffer.getvalue())
    return path


def write_dicom(path: Path, pixels: np.ndarray, **tags: Any) -> Path:
    """Shortcut: make_dataset(pixels, **tags) saved to `path`."""
    return save(make_dataset(pixels, **tags), path)
