"""Builders of bad input files (empty, cut, renamed, bombs, refused DICOMs), shared by tests."""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from dicom_factory import compress, make_dataset, save, write_dicom

TEXT_CONTENT = b"patient,label\n001,pneumonia\n"
PDF_CONTENT = b"%PDF-1.4\n1 0 obj\n<< /Type /Catalog >>\nendobj\n"


def png_chunk(kind: bytes, payload: bytes) -> bytes:
    """One PNG chunk: length, type, payload and CRC."""
    body = kind + payload
    return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))


def png_bomb(width: int = 30000, height: int = 30000) -> bytes:
    """A valid-looking 8-bit grey PNG declaring width x height pixels in a few hundred bytes."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width + 1) * 4)  # a few rows; the rest never gets read
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", ihdr)
        + png_chunk(b"IDAT", idat)
        + png_chunk(b"IEND", b"")
    )


def noisy_film(size: int = 64, seed: int = 0) -> np.ndarray:
    """uint8 (size, size) gradient plus noise: compresses poorly, so a cut file loses pixels."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 200, size, dtype=np.float32)[None, :] + np.zeros((size, 1), np.float32)
    return np.clip(ramp + rng.normal(0, 25, (size, size)), 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, fmt: str) -> bytes:
    """PNG or JPEG bytes of a uint8 grey image."""
    buffer = io.BytesIO()
    Image.fromarray(pixels, mode="L").save(buffer, format=fmt)
    return buffer.getvalue()


def _write_bytes(data: bytes) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(data)

    return write


def _write_cut(fmt: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        data = encode(noisy_film(), fmt)
        path.write_bytes(data[: len(data) // 2])

    return write


def _write_dicom_without_pixels(path: Path) -> None:
    ds = make_dataset(noisy_film(32))
    del ds.PixelData
    save(ds, path)


def _write_multi_frame(path: Path) -> None:
    frame = noisy_film(32)
    write_dicom(path, np.stack([frame, frame, frame]))


def _write_ct(path: Path) -> None:
    write_dicom(path, noisy_film(32), modality="CT")


def rle_panic_dicom(path: Path | None = None) -> bytes:
    """A 16-bit RLE DICOM whose first segment overruns its frame: pylibjpeg-rle panics.

    The decoder (Rust, through pyo3) raises `pyo3_runtime.PanicException` ("index out of
    bounds: the len is 8192 but the index is 8192"), a BaseException, not an Exception.
    """
    from pydicom.encaps import encapsulate, generate_frames
    from pydicom.uid import RLELossless

    ds = compress(make_dataset(noisy_film(64).astype(np.uint16) * 200), RLELossless)
    frame = bytearray(next(generate_frames(ds.PixelData, number_of_frames=1)))
    frame[64:64] = b"\x81\x00"  # a 128-byte repeat run at the start of segment 1
    ds.PixelData = encapsulate([bytes(frame)])
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    if path is not None:
        path.write_bytes(buffer.getvalue())
    return buffer.getvalue()


def hostile_window_dicom(center: float, width: float, function: str | None = None) -> bytes:
    """An 8-bit DICOM film whose Window Center/Width (and VOI LUT Function) are given."""
    ds = make_dataset(noisy_film(64), window=(center, width), voi_function=function)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _write_rle_panic(path: Path) -> None:
    rle_panic_dicom(path)


def _write_rescale_inf(path: Path) -> None:
    write_dicom(path, noisy_film(32), rescale=(float("inf"), 0.0))


@dataclass(frozen=True)
class BadFile:
    """A bad input: the file name to use, words its error reason contains, and a writer."""

    name: str
    words: tuple[str, ...]
    write: Callable[[Path], None]


#: Every bad input the reader and `cxr data info` must refuse with a one-line reason.
BAD_FILES: dict[str, BadFile] = {
    "zero-byte": BadFile("empty.png", ("empty file",), _write_bytes(b"")),
    "truncated-png": BadFile("cut.png", ("truncated png",), _write_cut("PNG")),
    "truncated-jpeg": BadFile("cut.jpg", ("truncated jpeg",), _write_cut("JPEG")),
    "text-as-png": BadFile(
        "notes.png", ("not a png, jpeg or dicom", "plain text"), _write_bytes(TEXT_CONTENT)
    ),
    "pdf-as-png": BadFile(
        "report.png", ("not a png, jpeg or dicom", "pdf"), _write_bytes(PDF_CONTENT)
    ),
    "png-bomb": BadFile(
        "bomb.png", ("decompression bomb", "30000x30000"), _write_bytes(png_bomb())
    ),
    "dicom-no-pixels": BadFile("nopixels.dcm", ("no pixel data",), _write_dicom_without_pixels),
    "dicom-multi-frame": BadFile("cine.dcm", ("multi-frame", "3 frames"), _write_multi_frame),
    "dicom-ct": BadFile("ct.dcm", ("modality is ct", "not a projection radiograph"), _write_ct),
    "dicom-rle-panic": BadFile(
        "panic.dcm", ("rle lossless", "could not be decoded", "panicexception"), _write_rle_panic
    ),
    "dicom-rescale-inf": BadFile(
        "slope.dcm", ("rescale slope is inf", "not a finite number"), _write_rescale_inf
    ),
    "tiny-png": BadFile(
        "tiny.png", ("8x8 px", "too small"), _write_bytes(encode(noisy_film(8), "PNG"))
    ),
}


def write_bad_file(key: str, folder: Path) -> Path:
    """Write the bad input `key` of BAD_FILES into `folder`; returns its path."""
    case = BAD_FILES[key]
    path = folder / case.name
    case.write(path)
    return path
