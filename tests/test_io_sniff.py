"""Content sniffing: PNG, JPEG and DICOM are told apart by their bytes, not their names."""

from __future__ import annotations

from pathlib import Path

import pytest

from cxrkit.io import sniff_format
from cxrkit.io.sniff import SNIFF_BYTES, describe_content

SIIM_DCM = "1.2.276.0.7230010.3.1.4.8323329.6904.1517875201.850819.dcm"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("00000001_000.png", "png"),
        ("16747_3_1.jpg", "jpeg"),
        ("covid-19-pneumonia-58-prior.jpg", "jpeg"),
        (SIIM_DCM, "dicom"),
        ("Fake_MONOHR1.dcm", "dicom"),
    ],
)
def test_sniff_recognises_real_files(samples_dir: Path, name: str, expected: str) -> None:
    head = (samples_dir / name).read_bytes()[:SNIFF_BYTES]
    assert sniff_format(head) == expected


@pytest.mark.parametrize(
    ("head", "looks_like"),
    [
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "PDF"),
        (b"patient_id,label\n0001,normal\n", "text"),
        (b"GIF89a\x01\x00\x01\x00", "GIF"),
        (b"PK\x03\x04\x14\x00\x00\x00", "ZIP"),
        (b"<!DOCTYPE html><html>", "HTML"),
        (b"\x00\x01\x02\x03\xfe\xfd\xfc\xfb" * 20, "binary"),
    ],
)
def test_sniff_rejects_and_describes_other_content(head: bytes, looks_like: str) -> None:
    assert sniff_format(head) is None
    assert looks_like in describe_content(head)


def test_sniff_needs_the_full_png_signature() -> None:
    assert sniff_format(b"\x89PNG\r\n\x1a\n\x00\x00") == "png"
    assert sniff_format(b"\x89PNG") is None
    assert sniff_format(b"") is None
