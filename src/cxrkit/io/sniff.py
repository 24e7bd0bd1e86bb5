"""Tell PNG, JPEG and DICOM apart by their first bytes, never by the file name."""

from __future__ import annotations

from cxrkit.io.meta import ImageFormat

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"
DICOM_MAGIC = b"DICM"
DICOM_PREAMBLE = 128

#: How many leading bytes `sniff_format` needs at most.
SNIFF_BYTES = DICOM_PREAMBLE + len(DICOM_MAGIC)

# Other formats people rename to .png/.dcm, so the error can say what the bytes look like.
_LOOKALIKES: tuple[tuple[bytes, str], ...] = (
    (b"%PDF", "a PDF document"),
    (b"GIF8", "a GIF image"),
    (b"BM", "a BMP image"),
    (b"II*\x00", "a TIFF image"),
    (b"MM\x00*", "a TIFF image"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
)


def sniff_format(head: bytes) -> ImageFormat | None:
    """Return 'png', 'jpeg' or 'dicom' from a file's first bytes (>= 132 advised), else None."""
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    if head[DICOM_PREAMBLE:SNIFF_BYTES] == DICOM_MAGIC or _is_bare_dicom(head):
        return "dicom"
    return None


def _is_bare_dicom(head: bytes) -> bool:
    """A DICOM data set written without preamble: starts with a group 0002 or 0008 tag."""
    if len(head) < 8 or head[:2] not in (b"\x02\x00", b"\x08\x00"):
        return False
    vr = head[4:6]
    explicit = vr.isalpha() and vr.isupper()
    implicit_length = int.from_bytes(head[4:8], "little")
    return explicit or implicit_length < 1024


def describe_content(head: bytes) -> str:
    """A few words on what unrecognised bytes look like, for error messages."""
    if head[4:12] == b"ftypheic" or head[8:12] == b"WEBP":
        return "a HEIC/WebP image"
    for magic, what in _LOOKALIKES:
        if head.startswith(magic):
            return what
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        return "HTML/XML text"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:  # not just a character cut at the end of `head`
            return "unrecognised binary data"
        text = head[: exc.start].decode("utf-8")
    if all(ch.isprintable() or ch in "\r\n\t" for ch in text):
        return "plain text"
    return "unrecognised binary data"
