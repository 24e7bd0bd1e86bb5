"""Bad input: every failure is an ImageReadError subclass naming the file and the reason."""

from __future__ import annotations

import io
import struct
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from bad_files import PDF_CONTENT, TEXT_CONTENT, png_bomb
from cxrkit.errors import (
    CorruptImageError,
    DecompressionBombError,
    DicomError,
    EmptyFileError,
    ImageReadError,
    UnsupportedFormatError,
)
from cxrkit.io import read_image, read_image_bytes
from dicom_factory import make_dataset, png_pixels, save, write_dicom

NIH_PNG = "00000001_000.png"
SIIM_DCM = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"


def _raises(path: Path, kind: type[ImageReadError], *words: str, **kw: object) -> str:
    """Read `path`, expect `kind`; the message must name the file and contain `words`."""
    with pytest.raises(kind) as info:
        read_image(path, **kw)
    message = str(info.value)
    assert path.name in message and info.value.path == str(path)
    for word in words:
        assert word.lower() in message.lower(), message
    return message


@pytest.fixture(scope="module")
def film(samples_dir: Path) -> np.ndarray:
    return png_pixels(samples_dir / NIH_PNG, size=64)


def test_missing_file(tmp_path: Path) -> None:
    _raises(tmp_path / "nowhere.png", ImageReadError, "not found")


def test_directory(tmp_path: Path) -> None:
    (tmp_path / "films.png").mkdir()
    _raises(tmp_path / "films.png", ImageReadError, "directory")


def test_zero_byte_file(tmp_path: Path) -> None:
    path = tmp_path / "empty.png"
    path.touch()
    _raises(path, EmptyFileError, "empty")
    with pytest.raises(EmptyFileError, match="upload.dcm.*empty"):
        read_image_bytes(b"", name="upload.dcm")


@pytest.mark.parametrize("keep", [0.5, 0.95], ids=["half", "most"])
@pytest.mark.parametrize("source", [NIH_PNG, "covid-19-pneumonia-58-prior.jpg", "16747_3_1.jpg"])
def test_truncated_png_and_jpeg(
    samples_dir: Path, tmp_path: Path, source: str, keep: float
) -> None:
    data = (samples_dir / source).read_bytes()
    path = tmp_path / f"cut_{source}"
    path.write_bytes(data[: int(len(data) * keep)])
    _raises(path, CorruptImageError, "truncated")


def test_jpeg_missing_only_its_end_marker_is_truncated(samples_dir: Path, tmp_path: Path) -> None:
    data = (samples_dir / "16747_3_1.jpg").read_bytes()
    assert data.endswith(b"\xff\xd9")
    path = tmp_path / "no_eoi.jpg"
    path.write_bytes(data[:-2])
    _raises(path, CorruptImageError, "truncated")


def test_png_with_garbage_after_signature(tmp_path: Path) -> None:
    path = tmp_path / "garbage.png"
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\x00\x11\x22\x33" * 50)
    _raises(path, CorruptImageError, "PNG")


@pytest.mark.parametrize(
    ("content", "looks_like"),
    [
        (TEXT_CONTENT, "text"),
        (PDF_CONTENT, "PDF"),
    ],
)
def test_text_and_pdf_renamed_png(tmp_path: Path, content: bytes, looks_like: str) -> None:
    path = tmp_path / "film.png"
    path.write_bytes(content)
    _raises(path, UnsupportedFormatError, "not a PNG, JPEG or DICOM", looks_like)


def test_png_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    """A 30000x30000 PNG header (900 Mpx) in a file of a few hundred bytes."""
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb(30000, 30000))
    start = time.perf_counter()
    message = _raises(path, DecompressionBombError, "decompression bomb", "30000x30000")
    assert time.perf_counter() - start < 0.5
    assert "100,000,000" in message


def test_jpeg_bomb_is_refused_from_its_header(tmp_path: Path) -> None:
    buffer = io.BytesIO()
    Image.new("L", (8, 8), 128).save(buffer, format="JPEG")
    data = bytearray(buffer.getvalue())
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 60000, 60000)
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bytes(data))
    _raises(path, DecompressionBombError, "decompression bomb", "60000x60000")


def test_max_pixels_applies_to_real_png_and_dicom(samples_dir: Path) -> None:
    _raises(samples_dir / NIH_PNG, DecompressionBombError, "decompression bomb", max_pixels=1000)
    _raises(samples_dir / SIIM_DCM, DecompressionBombError, "1024x1024", max_pixels=1000)


def test_dicom_bomb_is_refused_before_decoding(film: np.ndarray, tmp_path: Path) -> None:
    ds = make_dataset(film)
    ds.Rows, ds.Columns = 20000, 20000  # declared size; the pixel data stays tiny
    path = save(ds, tmp_path / "bomb.dcm")
    _raises(path, DecompressionBombError, "decompression bomb", "20000x20000")


def test_dicom_without_pixel_data(film: np.ndarray, tmp_path: Path) -> None:
    ds = make_dataset(film)
    del ds.PixelData
    _raises(save(ds, tmp_path / "nopixels.dcm"), DicomError, "no pixel data")


def test_multi_frame_dicom(film: np.ndarray, tmp_path: Path) -> None:
    path = write_dicom(tmp_path / "cine.dcm", np.stack([film, film, film]))
    _raises(path, DicomError, "multi-frame", "3 frames")


@pytest.mark.parametrize("modality", ["CT", "MR"])
def test_ct_and_mr_dicoms_are_refused(film: np.ndarray, tmp_path: Path, modality: str) -> None:
    path = write_dicom(tmp_path / f"{modality}.dcm", film, modality=modality)
    _raises(path, DicomError, f"Modality is {modality}", "not a projection radiograph")


def test_compressed_dicom_with_truncated_pixel_data(samples_dir: Path, tmp_path: Path) -> None:
    data = (samples_dir / SIIM_DCM).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[: len(data) // 2])
    with pytest.warns(UserWarning):  # pydicom's own note that the file ended early
        _raises(path, CorruptImageError, "truncated", "pixel data")


def test_uncompressed_dicom_with_truncated_pixel_data(film: np.ndarray, tmp_path: Path) -> None:
    data = write_dicom(tmp_path / "full.dcm", film).read_bytes()
    path = tmp_path / "cut.dcm"
    path.write_bytes(data[:-100])
    _raises(path, CorruptImageError, "truncated", f"{film.size:,} expected")


def test_dicom_magic_with_garbage_body(tmp_path: Path) -> None:
    path = tmp_path / "garbage.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\xff\xfe\x12\x34" * 64)
    with pytest.raises(ImageReadError, match="garbage.dcm"):
        read_image(path)


def test_no_raw_decoder_exception_escapes(samples_dir: Path, film: np.ndarray) -> None:
    """Cut and corrupt real files at many places: reading succeeds or raises ImageReadError."""
    dicom = io.BytesIO()
    make_dataset(film).save_as(dicom, enforce_file_format=True)
    sources = {
        "nih.png": (samples_dir / NIH_PNG).read_bytes(),
        "padchest.jpg": (samples_dir / "16747_3_1.jpg").read_bytes(),
        "film.dcm": dicom.getvalue(),
    }
    rng = np.random.default_rng(0)
    for name, data in sources.items():
        for fraction in (0.01, 0.05, 0.2, 0.7, 0.999):
            variants = [data[: max(1, int(len(data) * fraction))]]
            corrupted = bytearray(data)
            at = rng.integers(8, len(data), size=16)
            corrupted[at[0] : at[0] + 64] = rng.integers(0, 256, size=64, dtype=np.uint8).tobytes()
            variants.append(bytes(corrupted[: len(data)]))
            for variant in variants:
                try:
                    image, _ = read_image_bytes(variant, name=name)
                except ImageReadError as exc:
                    assert name in str(exc)
                else:
                    assert image.dtype == np.float32 and image.ndim == 2


def test_malformed_voi_lut_is_a_corrupt_image(film: np.ndarray, tmp_path: Path) -> None:
    ds = make_dataset(film, voi_lut=np.arange(256, dtype=np.uint8))
    ds.VOILUTSequence[0].LUTDescriptor = [256, 0]  # three values required
    _raises(save(ds, tmp_path / "badlut.dcm"), CorruptImageError, "malformed DICOM")
