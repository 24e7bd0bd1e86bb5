"""Decode single-frame projection radiograph DICOMs with pydicom into float32 grey in [0, 1]."""

from __future__ import annotations

import io

import numpy as np
import pydicom
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pydicom.pixels import apply_modality_lut
from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from cxrkit.errors import CorruptImageError, DicomError
from cxrkit.io.limits import check_pixel_count
from cxrkit.io.meta import ImageMeta
from cxrkit.io.quiet import native_stderr_silenced
from cxrkit.io.reasons import describe_exception, is_fatal

#: Modalities read as chest films; a missing Modality is accepted too.
ACCEPTED_MODALITIES = frozenset({"CR", "DX"})

_MONOCHROME = frozenset({"MONOCHROME1", "MONOCHROME2"})
_COLOUR = frozenset({"RGB", "YBR_FULL", "YBR_FULL_422", "YBR_ICT", "YBR_RCT"})
_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_PIXEL_DATA_TAG = b"\xe0\x7f\x10\x00"  # (7FE0,0010) little endian
_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
#: 1 / width is kept within these bounds, so a hostile width never makes 0 x inf = NaN.
_MAX_WINDOW_SCALE = 1e30
_MIN_WINDOW_SCALE = 1e-30


def read_dicom(data: bytes, name: str, max_pixels: int) -> tuple[np.ndarray, ImageMeta]:
    """Decode DICOM bytes to a float32 (h, w) image in [0, 1] (MONOCHROME2) and its ImageMeta.

    Pipeline: stored values -> Modality LUT / Rescale Slope+Intercept -> VOI LUT, else Window
    Center/Width (first of each), else min-max -> [0, 1] -> inverted if MONOCHROME1.
    Compressed transfer syntaxes decode through pydicom's pylibjpeg/Pillow plugins.
    Hostile values: a non-finite Rescale Slope/Intercept (or one that overflows the pixel
    values) is a CorruptImageError; a window that is not finite, has width <= 0 (< 1 for
    LINEAR) or does not overlap the film's values is ignored (min-max instead).
    Malformed element values may raise other exceptions; `read_image_bytes` wraps those.
    """
    ds = _parse(data, name)
    modality = _check_is_film(ds, data, name)
    rows, columns = _frame_size(ds, name)
    check_pixel_count(name, rows, columns, max_pixels)
    photometric = str(ds.get("PhotometricInterpretation", "") or "MONOCHROME2").strip().upper()
    if photometric not in _MONOCHROME and photometric not in _COLOUR:
        raise DicomError(name, f"unsupported Photometric Interpretation {photometric[:32]!r}")

    stored = _pixels(ds, name)
    if stored.ndim != (2 if photometric in _MONOCHROME else 3):
        raise DicomError(name, f"unexpected {photometric} pixel array shape {stored.shape}")
    if photometric in _MONOCHROME:
        image = _monochrome_to_unit(stored, ds, name)
    else:
        image = _colour_to_unit(stored, _bits_stored(ds))
    inverted = photometric == "MONOCHROME1"
    if inverted:
        np.subtract(1.0, image, out=image)
    meta = ImageMeta(
        path=name,
        format="dicom",
        bit_depth=_bits_stored(ds),
        original_size=(int(image.shape[0]), int(image.shape[1])),
        photometric=photometric,
        pixel_spacing=_pixel_spacing(ds),
        inverted=inverted,
        modality=modality,
    )
    return image, meta


def _parse(data: bytes, name: str) -> Dataset:
    try:
        return pydicom.dcmread(io.BytesIO(data), force=True)
    except MemoryError:
        raise
    except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, ValueError...
        detail = describe_exception(exc)
        raise CorruptImageError(name, f"not a readable DICOM file ({detail})") from exc


def _check_is_film(ds: Dataset, data: bytes, name: str) -> str | None:
    """Refuse non-radiograph modalities, files without pixels and multi-frame files."""
    modality = str(ds.get("Modality", "") or "").strip().upper() or None
    if modality is not None and modality not in ACCEPTED_MODALITIES:
        raise DicomError(
            name,
            f"Modality is {modality[:32]}, not a projection radiograph "
            f"(accepted: {', '.join(sorted(ACCEPTED_MODALITIES))} or no Modality)",
        )
    if not any(keyword in ds for keyword in _PIXEL_KEYWORDS):
        if _PIXEL_DATA_TAG in data:  # pydicom drops an element cut short by the end of file
            raise CorruptImageError(
                name, "truncated DICOM file: the pixel data element (7FE0,0010) is incomplete"
            )
        sop_class = ds.get("SOPClassUID")
        sop_name = str(getattr(sop_class, "name", sop_class))[:80]
        kind = f" (SOP class: {sop_name})" if sop_class else ""
        raise DicomError(name, f"DICOM has no pixel data{kind}")
    frames = _int_or(ds.get("NumberOfFrames"), 1)
    if frames > 1:
        raise DicomError(
            name, f"multi-frame DICOM ({frames} frames); only single-frame films are read"
        )
    return modality


def _frame_size(ds: Dataset, name: str) -> tuple[int, int]:
    rows, columns = _int_or(ds.get("Rows"), 0), _int_or(ds.get("Columns"), 0)
    if rows <= 0 or columns <= 0:
        raise CorruptImageError(
            name, f"DICOM declares no image size (Rows={rows}, Columns={columns})"
        )
    return rows, columns


def _pixels(ds: Dataset, name: str) -> np.ndarray:
    """The stored pixel array (decompressed), errors mapped to ours."""
    syntax = _transfer_syntax(ds)
    syntax_name = syntax.name if syntax is not None else "unknown transfer syntax"
    if syntax is not None and not syntax.is_compressed:
        _check_native_length(ds, name)
    try:
        if syntax is not None and syntax.is_compressed:
            with native_stderr_silenced():  # a Rust panic prints a backtrace on fd 2
                arr = ds.pixel_array
        else:
            arr = ds.pixel_array
    except MemoryError:
        raise
    except NotImplementedError as exc:
        detail = describe_exception(exc)
        raise DicomError(name, f"no decoder for {syntax_name} is installed ({detail})") from exc
    except BaseException as exc:  # pyo3_runtime.PanicException is a BaseException
        if is_fatal(exc):
            raise
        detail = describe_exception(exc)
        reason = f"DICOM pixel data ({syntax_name}) could not be decoded ({detail})"
        raise CorruptImageError(name, reason) from exc
    return arr


def _check_native_length(ds: Dataset, name: str) -> None:
    """Uncompressed pixel data shorter than Rows x Columns x samples x bits is a cut file."""
    value = ds.get("PixelData")
    bits = _int_or(ds.get("BitsAllocated"), 0)
    if not isinstance(value, bytes) or bits <= 0:
        return
    samples = _int_or(ds.get("SamplesPerPixel"), 1) or 1
    expected = (_int_or(ds.Rows, 0) * _int_or(ds.Columns, 0) * samples * bits + 7) // 8
    if len(value) < expected:
        raise CorruptImageError(
            name,
            f"truncated DICOM file: {len(value):,} bytes of pixel data, "
            f"{expected:,} expected for {ds.Columns}x{ds.Rows}",
        )


def _transfer_syntax(ds: Dataset) -> UID | None:
    """The Transfer Syntax UID; for a bare data set (no file meta) inferred from its encoding."""
    file_meta = getattr(ds, "file_meta", None)
    if file_meta is None:
        return None
    syntax = file_meta.get("TransferSyntaxUID")
    if syntax is None:
        implicit_vr, little_endian = getattr(ds, "original_encoding", (None, None))
        if little_endian and implicit_vr is not None:
            syntax = ImplicitVRLittleEndian if implicit_vr else ExplicitVRLittleEndian
            file_meta.TransferSyntaxUID = syntax
    return syntax


def _monochrome_to_unit(stored: np.ndarray, ds: Dataset, name: str) -> np.ndarray:
    """Modality then VOI transform, ending as float32 in [0, 1] (before any inversion)."""
    values, identity = _modality_values(stored, ds, name)
    if _has_voi_lut(ds):
        indices = stored.astype(np.int32) if identity else np.rint(values).astype(np.int32)
        return _apply_voi_lut(indices, ds.VOILUTSequence[0], _little_endian(ds), name)
    low, high = float(values.min()), float(values.max())
    window = _window(ds, low, high)
    with np.errstate(over="ignore", under="ignore"):  # huge/tiny widths saturate, by design
        if window is not None:
            return _apply_window(values, *window)
        return _min_max(values, low, high)


def _modality_values(stored: np.ndarray, ds: Dataset, name: str) -> tuple[np.ndarray, bool]:
    """float32 modality values and whether they equal the stored ones.

    A Rescale Slope/Intercept that is not a finite number, or that overflows float32 on
    this film's values, is a CorruptImageError (a film of NaN is never returned).
    """
    if ds.get("ModalityLUTSequence"):
        with np.errstate(all="ignore"):
            values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float32)
        if not np.isfinite(values).all():
            raise CorruptImageError(name, "the Modality LUT gives non-finite pixel values")
        return values, False
    values = stored.astype(np.float32)
    slope = _float_or(ds.get("RescaleSlope"), 1.0)
    intercept = _float_or(ds.get("RescaleIntercept"), 0.0)
    for keyword, number in (("Rescale Slope", slope), ("Rescale Intercept", intercept)):
        if not np.isfinite(number):
            raise CorruptImageError(name, f"{keyword} is {number}, not a finite number")
    with np.errstate(all="ignore"):
        if slope != 1.0:
            values *= np.float64(slope)  # float64 scalar: no silent cast of 1e308 to inf
        if intercept != 0.0:
            values += np.float64(intercept)
    if not np.isfinite(values).all():
        raise CorruptImageError(
            name,
            f"Rescale Slope {slope:g} / Intercept {intercept:g} overflow this film's values",
        )
    return values, slope == 1.0 and intercept == 0.0


def _has_voi_lut(ds: Dataset) -> bool:
    seq = ds.get("VOILUTSequence")
    return bool(seq) and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]


def _apply_voi_lut(
    indices: np.ndarray, item: Dataset, little_endian: bool, name: str
) -> np.ndarray:
    """First VOI LUT of the sequence, output scaled by its declared entry depth to [0, 1].

    Done here rather than with pydicom's apply_voi, which (3.0) indexes 8-bit LUTs with
    uint8 and so wraps input values above 255. A declared depth outside 1..16 bits is
    replaced by the LUT's own maximum; an empty LUT is a CorruptImageError.
    """
    entries, first_mapped, depth = (int(v) for v in item.LUTDescriptor)
    if not 1 <= depth <= 16:
        depth = 0  # hostile depth: scale by the LUT's largest entry instead
    entries = entries or 65536
    if first_mapped > 32767 and indices.min() < 0:  # signed first value stored as US
        first_mapped -= 65536
    data = item.LUTData
    if isinstance(data, bytes):  # OW: 16-bit words (8-bit entries in the low byte)
        lut = np.frombuffer(data, dtype="<u2" if little_endian else ">u2")[:entries]
    else:
        lut = np.asarray(data if isinstance(data, (list, tuple, MultiValue)) else [data])
    if lut.size == 0 or not np.issubdtype(lut.dtype, np.number):
        raise CorruptImageError(name, "the VOI LUT has no usable entries")
    lut = np.abs(lut.astype(np.float64))
    if not np.isfinite(lut).all():
        raise CorruptImageError(name, "the VOI LUT holds non-finite entries")
    indices -= first_mapped
    np.clip(indices, 0, len(lut) - 1, out=indices)
    top = max(2.0**depth - 1, float(lut.max()), 1.0)
    return np.divide(lut.astype(np.float32)[indices], top, dtype=np.float32)


def _little_endian(ds: Dataset) -> bool:
    syntax = _transfer_syntax(ds)
    return True if syntax is None else bool(syntax.is_little_endian)


def _window(ds: Dataset, low: float, high: float) -> tuple[float, float, str] | None:
    """(center, width, function) of the first window, None if absent or unusable.

    Unusable (the caller falls back to min-max): a center or width that is not a finite
    number, a width <= 0 (< 1 for LINEAR), or a window that misses the film's values
    [low, high] entirely (it would give a blank film).
    """
    center = _first_float(ds.get("WindowCenter"))
    width = _first_float(ds.get("WindowWidth"))
    if center is None or width is None:
        return None
    if not (np.isfinite(center) and np.isfinite(width)):
        return None
    function = str(ds.get("VOILUTFunction", "") or "LINEAR").strip().upper()
    if function not in ("LINEAR", "LINEAR_EXACT", "SIGMOID"):
        return None
    if width <= 0 or (function == "LINEAR" and width < 1):
        return None
    if function != "SIGMOID" and (center + width / 2 < low or center - width / 2 > high):
        return None
    return center, width, function


def _apply_window(values: np.ndarray, center: float, width: float, function: str) -> np.ndarray:
    """DICOM PS3.3 C.11.2.1.2 windowing straight to [0, 1], in place on float32 `values`."""
    if function == "SIGMOID":
        values -= np.float64(center)
        values *= -4.0 * _window_scale(width)
        np.exp(values, out=values)
        values += 1.0
        return np.reciprocal(values, out=values)
    if function == "LINEAR":
        if width == 1.0:  # a step at center - 0.5
            return (values > center - 0.5).astype(np.float32)
        center, width = center - 0.5, width - 1.0
    values -= np.float64(center)
    values *= _window_scale(width)
    values += 0.5
    return np.clip(values, 0.0, 1.0, out=values)


def _window_scale(width: float) -> float:
    """1 / width kept in [1e-30, 1e30]: widths beyond act as a step / a flat grey film."""
    return min(max(1.0 / width, _MIN_WINDOW_SCALE), _MAX_WINDOW_SCALE)


def _min_max(values: np.ndarray, low: float, high: float) -> np.ndarray:
    """Stretch the film's own value range [low, high] to [0, 1] (the file gives no VOI)."""
    if high <= low:
        return np.zeros_like(values)
    values -= np.float64(low)
    values *= min(1.0 / (high - low), _MAX_WINDOW_SCALE)
    return np.clip(values, 0.0, 1.0, out=values)


def _colour_to_unit(stored: np.ndarray, bits: int) -> np.ndarray:
    """Luma of an RGB film (pydicom already turned YBR into RGB), scaled by the bit depth."""
    grey = stored[..., :3].astype(np.float32) @ _LUMA
    if not 1 <= bits <= 16:  # hostile BitsStored: scale by the container instead
        bits = 8 if stored.dtype.itemsize == 1 else 16
    grey *= 1.0 / (2**bits - 1)
    return np.clip(grey, 0.0, 1.0, out=grey)


def _pixel_spacing(ds: Dataset) -> tuple[float, float] | None:
    """(row, column) spacing in mm from PixelSpacing, else ImagerPixelSpacing."""
    for keyword in ("PixelSpacing", "ImagerPixelSpacing"):
        value = ds.get(keyword)
        try:
            row, column = (float(v) for v in value)
        except (TypeError, ValueError):
            continue
        if row > 0 and column > 0:
            return row, column
    return None


def _bits_stored(ds: Dataset) -> int:
    return _int_or(ds.get("BitsStored"), 0) or _int_or(ds.get("BitsAllocated"), 8)


def _first_float(value: object) -> float | None:
    """First number of a possibly multi-valued element (Window Center/Width), else None."""
    if isinstance(value, (MultiValue, list, tuple)):
        value = value[0] if len(value) else None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _float_or(value: object, default: float) -> float:
    number = _first_float(value)
    return default if number is None else number


def _int_or(value: object, default: int) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return default
