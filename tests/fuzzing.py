"""Fuzz engine for films: structure-aware and byte-level mutations of seed films.

Used by tests/test_fuzz.py (a few hundred cases in CI) and benchmarks/fuzz.py (>= 10,000);
seeds come from `fuzz_seeds`, outcome classes and the tally from `fuzz_outcomes`.
Everything is seeded: case `i` of master seed `s` is always the same bytes, so a failure
is reproduced with `make_case(seeds, i, s)`. A seeded numpy RNG is used rather than
hypothesis: cases must be generated in one process and decoded in killable workers, and
shrinking matters less than a reproducible tally.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.uid import (
    JPEG2000,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGLosslessSV1,
    RLELossless,
)

from fuzz_seeds import Seed, sample_seeds, synthetic_seeds

__all__ = [
    "Case",
    "Seed",
    "make_case",
    "mutate",
    "quiet_pydicom",
    "sample_seeds",
    "synthetic_seeds",
]

Rng = np.random.Generator


@dataclass(frozen=True)
class Case:
    """One fuzz input: which seed, which mutations, and the bytes."""

    index: int
    seed: str
    kind: str
    mutation: str
    data: bytes
    target: str = "film"  # what reads it (tests/fuzz_targets.py): film, mask, card, decision

    @property
    def name(self) -> str:
        """A file name for the case (its extension follows the seed's kind)."""
        ext = {"png": "png", "jpeg": "jpg", "dicom": "dcm", "json": "json"}[self.kind]
        return f"case{self.index:05d}_{self.seed}.{ext}"


# --- byte-level mutations -------------------------------------------------------------


def bit_flips(rng: Rng, data: bytes) -> bytes:
    """Flip 1-16 random bits."""
    out = bytearray(data)
    for _ in range(int(rng.integers(1, 17))):
        pos = int(rng.integers(len(out)))
        out[pos] ^= 1 << int(rng.integers(8))
    return bytes(out)


def truncate(rng: Rng, data: bytes) -> bytes:
    """Cut the file at a random point (keeps at least one byte)."""
    return data[: int(rng.integers(1, len(data)))]


def insert_bytes(rng: Rng, data: bytes) -> bytes:
    """Insert 1-64 random bytes at a random point."""
    pos, n = int(rng.integers(len(data))), int(rng.integers(1, 65))
    return data[:pos] + rng.integers(0, 256, n, dtype=np.uint8).tobytes() + data[pos:]


def duplicate_chunk(rng: Rng, data: bytes) -> bytes:
    """Copy a random chunk of the file to another random point."""
    start = int(rng.integers(len(data)))
    end = min(len(data), start + int(rng.integers(1, 257)))
    pos = int(rng.integers(len(data)))
    return data[:pos] + data[start:end] + data[pos:]


def delete_chunk(rng: Rng, data: bytes) -> bytes:
    """Remove a random chunk of 1-256 bytes."""
    start = int(rng.integers(len(data)))
    return data[:start] + data[start + int(rng.integers(1, 257)) :]


def magic_values(rng: Rng, data: bytes) -> bytes:
    """Overwrite 1-4 spots with boundary values (0, 0xFF, 0x7F, 0x80, 0xFFFF, 0x7FFFFFFF)."""
    out = bytearray(data)
    values = [b"\x00", b"\xff", b"\x7f", b"\x80", b"\xff\xff", b"\x00\x00", b"\x7f\xff\xff\xff"]
    for _ in range(int(rng.integers(1, 5))):
        value = values[int(rng.integers(len(values)))]
        pos = int(rng.integers(len(out)))
        out[pos : pos + len(value)] = value
    return bytes(out)


BYTE_MUTATIONS: dict[str, Callable[[Rng, bytes], bytes]] = {
    "bit_flips": bit_flips,
    "truncate": truncate,
    "insert": insert_bytes,
    "duplicate": duplicate_chunk,
    "delete": delete_chunk,
    "magic_values": magic_values,
}


# --- DICOM tag mutations ----------------------------------------------------------------

_HUGE = [1e308, -1e308, 1e-30, -1e-30, 0.0, -1.0, float("inf"), float("-inf"), float("nan")]
_SYNTAXES = [
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    RLELossless,
    JPEGBaseline8Bit,
    JPEG2000,
    JPEG2000Lossless,
    JPEGLosslessSV1,
    "1.2.840.10008.1.2.2",
    "1.2.3.4.5",
    "",
]
_PHOTOMETRIC = [
    "MONOCHROME1",
    "MONOCHROME2",
    "RGB",
    "PALETTE COLOR",
    "YBR_FULL",
    "YBR_FULL_422",
    "ARGB",
    "",
    "MONOCHROME3",
]


def _pick(rng: Rng, values: list[Any]) -> Any:
    return values[int(rng.integers(len(values)))]


def _set(ds: pydicom.Dataset, keyword: str, value: Any) -> str:
    setattr(ds, keyword, value)
    return f"{keyword}={value!r}"


def _mutate_size(rng: Rng, ds: pydicom.Dataset) -> str:
    key = _pick(rng, ["Rows", "Columns"])
    old = int(ds.get(key, 48))
    return _set(ds, key, _pick(rng, [0, 1, 2, 15, old - 1, old + 1, old * 2, 4096, 65535]))


def _mutate_bits(rng: Rng, ds: pydicom.Dataset) -> str:
    key = _pick(rng, ["BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation"])
    return _set(ds, key, _pick(rng, [0, 1, 7, 8, 12, 15, 16, 17, 32, 64, 255]))


def _mutate_window(rng: Rng, ds: pydicom.Dataset) -> str:
    center, width = _pick(rng, _HUGE + [40.0, 2000.0]), _pick(rng, _HUGE + [1.0, 400.0])
    ds.WindowCenter, ds.WindowWidth = center, width
    if rng.random() < 0.4:
        ds.VOILUTFunction = _pick(rng, ["LINEAR", "LINEAR_EXACT", "SIGMOID", "BOGUS"])
    return f"Window={center!r}/{width!r}"


def _mutate_rescale(rng: Rng, ds: pydicom.Dataset) -> str:
    slope, intercept = _pick(rng, _HUGE + [1.0, 1e-308]), _pick(rng, _HUGE + [0.0, -1024.0])
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    return f"Rescale={slope!r}/{intercept!r}"


def _mutate_photometric(rng: Rng, ds: pydicom.Dataset) -> str:
    if rng.random() < 0.3:
        _set(ds, "SamplesPerPixel", _pick(rng, [0, 1, 3, 4]))
    return _set(ds, "PhotometricInterpretation", _pick(rng, _PHOTOMETRIC))


def _mutate_syntax(rng: Rng, ds: pydicom.Dataset) -> str:
    syntax = _pick(rng, _SYNTAXES)
    ds.file_meta.TransferSyntaxUID = syntax
    return f"TransferSyntax={syntax}"


def _mutate_frames(rng: Rng, ds: pydicom.Dataset) -> str:
    return _set(ds, "NumberOfFrames", _pick(rng, [0, 1, 2, -1, 1000]))


def _mutate_voi_lut(rng: Rng, ds: pydicom.Dataset) -> str:
    item = pydicom.Dataset()
    entries = _pick(rng, [0, 1, 2, 256, 65535])
    item.add_new(
        "LUTDescriptor",
        "US",
        [entries, _pick(rng, [0, 1, 255, 65535]), _pick(rng, [0, 1, 8, 16, 17, 255])],
    )
    item.add_new("LUTData", "US", [int(v) for v in rng.integers(0, 65536, _pick(rng, [0, 1, 4]))])
    ds.VOILUTSequence = [item]
    return f"VOILUT(entries={entries})"


def _mutate_modality_lut(rng: Rng, ds: pydicom.Dataset) -> str:
    item = pydicom.Dataset()
    item.add_new("LUTDescriptor", "US", [_pick(rng, [0, 2, 4096]), 0, _pick(rng, [8, 16, 99])])
    item.add_new("LUTData", "US", [int(v) for v in rng.integers(0, 65536, 2)])
    item.ModalityLUTType = "HU"
    ds.ModalityLUTSequence = [item]
    return "ModalityLUT"


_DICOM_TAG_MUTATIONS: dict[str, Callable[[Rng, pydicom.Dataset], str]] = {
    "size": _mutate_size,
    "bits": _mutate_bits,
    "window": _mutate_window,
    "rescale": _mutate_rescale,
    "photometric": _mutate_photometric,
    "syntax": _mutate_syntax,
    "frames": _mutate_frames,
    "voi_lut": _mutate_voi_lut,
    "modality_lut": _mutate_modality_lut,
}


def dicom_tags(rng: Rng, data: bytes) -> tuple[bytes, str]:
    """Parse with pydicom, change 1-3 header values (see `_DICOM_TAG_MUTATIONS`), re-save."""
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    done = []
    for _ in range(int(rng.integers(1, 4))):
        key = _pick(rng, list(_DICOM_TAG_MUTATIONS))
        done.append(_DICOM_TAG_MUTATIONS[key](rng, ds))
    buffer = io.BytesIO()
    try:
        ds.save_as(buffer, enforce_file_format=False)
    except Exception:  # the mutation cannot be written as such: flip bytes instead
        return bit_flips(rng, data), "dicom_tags_unwritable>bit_flips"
    return buffer.getvalue(), "dicom_tags:" + ",".join(done)


def dicom_truncate_pixels(rng: Rng, data: bytes) -> tuple[bytes, str]:
    """Cut the file inside its Pixel Data element (7FE0,0010)."""
    tag = data.rfind(b"\xe0\x7f\x10\x00")
    if tag < 0:
        return truncate(rng, data), "truncate"
    cut = int(rng.integers(tag + 1, len(data)))
    return data[:cut], f"dicom_truncate_pixels@{cut - tag}"


# --- PNG chunk mutations ----------------------------------------------------------------


def _png_chunks(data: bytes) -> list[list[bytes]]:
    chunks, pos = [], 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        chunks.append([kind, data[pos + 8 : pos + 8 + length]])
        pos += 12 + length
    return chunks


def _png_join(chunks: list[list[bytes]], fix_crc: bool = True) -> bytes:
    out = [b"\x89PNG\r\n\x1a\n"]
    for kind, payload in chunks:
        crc = zlib.crc32(kind + payload) if fix_crc else 0xDEADBEEF
        out.append(struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc))
    return b"".join(out)


def _drop_one(rng: Rng, parts: list[list[Any]], keep_last: bool = False) -> Any:
    """Remove a random [tag, payload] part (never the last with `keep_last`); returns its tag."""
    return parts.pop(int(rng.integers(len(parts) - keep_last)))[0]


def _duplicate_one(rng: Rng, parts: list[list[Any]]) -> Any:
    """Insert a copy of a random [tag, payload] part before it; returns its tag."""
    i = int(rng.integers(len(parts)))
    parts.insert(i, list(parts[i]))
    return parts[i][0]


def png_chunks(rng: Rng, data: bytes) -> tuple[bytes, str]:
    """IHDR field changes, chunk drop/duplicate/reorder, damaged IDAT, bogus ancillary chunks;
    CRCs are recomputed so the damage reaches the decoder (sometimes they are not)."""
    chunks = _png_chunks(data)
    action = _pick(rng, ["ihdr", "drop", "duplicate", "swap", "idat", "ancillary", "zlib"])
    if action == "ihdr" and chunks and chunks[0][0] == b"IHDR":
        fields = list(struct.unpack(">IIBBBBB", chunks[0][1][:13]))
        index = int(rng.integers(7))
        choices = [
            [0, 1, 15, 16, 65535, 2**31 - 1, 40000],
            [0, 1, 15, 16, 65535, 2**31 - 1, 40000],
            [0, 1, 2, 3, 4, 8, 16, 32],
            [0, 1, 2, 3, 4, 5, 6, 7],
            [0, 1],
            [0, 1],
            [0, 1, 2],
        ]
        fields[index] = _pick(rng, choices[index])
        chunks[0][1] = struct.pack(">IIBBBBB", *fields) + chunks[0][1][13:]
        detail = f"ihdr[{index}]={fields[index]}"
    elif action == "drop" and len(chunks) > 1:
        detail = f"drop {_drop_one(rng, chunks).decode('latin-1')}"
    elif action == "duplicate" and chunks:
        detail = f"duplicate {_duplicate_one(rng, chunks).decode('latin-1')}"
    elif action == "swap" and len(chunks) > 2:
        i, j = (int(v) for v in rng.choice(len(chunks), 2, replace=False))
        chunks[i], chunks[j] = chunks[j], chunks[i]
        detail = "swap"
    elif action == "ancillary":
        kind = _pick(rng, [b"PLTE", b"tRNS", b"iCCP", b"sBIT", b"gAMA", b"eXIf", b"zTXt", b"pHYs"])
        payload = rng.integers(0, 256, int(rng.integers(0, 64)), dtype=np.uint8).tobytes()
        chunks.insert(1, [kind, payload])
        detail = f"add {kind.decode()}"
    else:  # damage the image data; with fixed CRC the inflater sees it
        idat = [c for c in chunks if c[0] == b"IDAT"]
        if not idat:
            return bit_flips(rng, data), "bit_flips"
        chunk = idat[int(rng.integers(len(idat)))]
        if action == "zlib":
            raw = bytearray(zlib.decompress(b"".join(c[1] for c in idat)))
            for _ in range(int(rng.integers(1, 9))):
                raw[int(rng.integers(len(raw)))] = int(rng.integers(256))  # bad filter bytes
            for c in idat[1:]:
                chunks.remove(c)
            idat[0][1] = zlib.compress(bytes(raw))
            detail = "zlib payload"
        else:
            chunk[1] = bit_flips(rng, chunk[1]) if chunk[1] else chunk[1]
            detail = "idat bits"
    return _png_join(chunks, fix_crc=rng.random() < 0.9), f"png_chunks:{action}:{detail}"


# --- JPEG marker mutations --------------------------------------------------------------


def _jpeg_segments(data: bytes) -> tuple[list[list[Any]], bytes]:
    """[marker, payload] segments up to and including SOS; the rest (scan + EOI)."""
    segments, pos = [], 2
    while pos + 4 <= len(data) and data[pos] == 0xFF:
        marker = data[pos + 1]
        (length,) = struct.unpack(">H", data[pos + 2 : pos + 4])
        segments.append([marker, data[pos + 4 : pos + 2 + length]])
        pos += 2 + length
        if marker == 0xDA:
            break
    return segments, data[pos:]


def _jpeg_join(segments: list[list[Any]], scan: bytes) -> bytes:
    out = [b"\xff\xd8"]
    for marker, payload in segments:
        out.append(bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload)
    return b"".join(out) + scan


def jpeg_markers(rng: Rng, data: bytes) -> tuple[bytes, str]:
    """SOF fields, DQT/DHT values, segment drop/duplicate, restart markers, EXIF, lost EOI."""
    segments, scan = _jpeg_segments(data)
    action = _pick(rng, ["sof", "dqt", "dht", "drop", "duplicate", "rst", "exif", "eoi", "sos"])
    sof = [s for s in segments if s[0] in (0xC0, 0xC1, 0xC2)]
    if action == "sof" and sof:
        payload = bytearray(sof[0][1])
        field = _pick(rng, ["precision", "height", "width", "components", "sampling"])
        if field == "precision":
            payload[0] = _pick(rng, [0, 1, 8, 12, 16, 255])
        elif field in ("height", "width"):
            at = 1 if field == "height" else 3
            payload[at : at + 2] = struct.pack(">H", _pick(rng, [0, 1, 15, 16, 8192, 65535]))
        elif field == "components":
            payload[5] = _pick(rng, [0, 1, 2, 3, 4, 255])
        elif len(payload) > 7:
            payload[7] = int(rng.integers(256))
        sof[0][1] = bytes(payload)
        detail = field
    elif action in ("dqt", "dht"):
        marker = 0xDB if action == "dqt" else 0xC4
        tables = [s for s in segments if s[0] == marker]
        if not tables:
            return bit_flips(rng, data), "bit_flips"
        table = tables[int(rng.integers(len(tables)))]
        table[1] = magic_values(rng, table[1]) if table[1] else table[1]
        detail = "values"
    elif action == "drop" and len(segments) > 1:
        detail = f"drop {_drop_one(rng, segments, keep_last=True):02X}"  # SOS stays
    elif action == "duplicate" and segments:
        detail = f"duplicate {_duplicate_one(rng, segments):02X}"
    elif action == "rst" and len(scan) > 4:
        pos = int(rng.integers(len(scan) - 2))
        scan = scan[:pos] + bytes([0xFF, 0xD0 + int(rng.integers(8))]) + scan[pos:]
        detail = "restart marker in scan"
    elif action == "exif":
        orientation = int(rng.integers(0, 12))
        tiff = b"MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01"
        tiff += struct.pack(">H", orientation) + b"\x00\x00\x00\x00\x00\x00"
        if rng.random() < 0.3:
            tiff = tiff[: int(rng.integers(len(tiff)))]
        segments.insert(0, [0xE1, b"Exif\x00\x00" + tiff])
        detail = f"orientation {orientation}"
    elif action == "eoi":
        scan = scan.rstrip(b"\xff\xd9")[: max(1, len(scan) - int(rng.integers(2, 64)))]
        detail = "scan cut, no EOI"
    else:
        sos = [s for s in segments if s[0] == 0xDA]
        if not sos:
            return bit_flips(rng, data), "bit_flips"
        sos[0][1] = magic_values(rng, sos[0][1])
        detail = "sos header"
    return _jpeg_join(segments, scan), f"jpeg_markers:{action}:{detail}"


STRUCTURE_MUTATIONS: dict[str, list[Callable[[Rng, bytes], tuple[bytes, str]]]] = {
    "dicom": [dicom_tags, dicom_tags, dicom_truncate_pixels],
    "png": [png_chunks],
    "jpeg": [jpeg_markers],
}


def mutate(rng: Rng, seed: Seed) -> tuple[bytes, str]:
    """One or two mutations of `seed`: structure-aware (60 %) or byte-level (40 %)."""
    data, names = seed.data, []
    for _ in range(1 if rng.random() < 0.75 else 2):
        if rng.random() < 0.6:
            mutator = _pick(rng, STRUCTURE_MUTATIONS[seed.kind])
            try:
                data, name = mutator(rng, data)
            except Exception:  # the previous mutation broke the structure: go byte-level
                data, name = bit_flips(rng, data), "bit_flips"
        else:
            name = _pick(rng, list(BYTE_MUTATIONS))
            data = BYTE_MUTATIONS[name](rng, data)
        names.append(name)
        if not data:
            data = seed.data[:1]
    return data, " + ".join(names)


def make_case(seeds: list[Seed], index: int, master_seed: int = 0) -> Case:
    """Case `index` of run `master_seed`: the same bytes every time."""
    rng = np.random.default_rng([master_seed, index])
    seed = seeds[int(rng.integers(len(seeds)))]
    data, mutation = mutate(rng, seed)
    return Case(index, seed.name, seed.kind, mutation, data)


def quiet_pydicom() -> None:
    """Let pydicom write and read hostile values without validation errors or chatter."""
    import logging
    import warnings

    pydicom.config.settings.writing_validation_mode = pydicom.config.IGNORE
    pydicom.config.settings.reading_validation_mode = pydicom.config.IGNORE
    logging.getLogger("pydicom").setLevel(logging.CRITICAL)
    warnings.simplefilter("ignore")
