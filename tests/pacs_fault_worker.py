"""The decode worker of the PACS fault tests (run as a script by `DecodePool`).

A film whose bytes hold `CXR-FAULT-HANG` hangs the decoder, `CXR-FAULT-SEGV` kills it with
SIGSEGV (the marker sits in a DICOM text attribute, e.g. Image Comments, so it survives the
trip through the PACS); the faults themselves are `faulty_decode_worker`'s. Anything else
is decoded normally.
"""

from __future__ import annotations

import sys
from typing import Any

from faulty_decode_worker import faulty_read

#: Marker in the film -> the magic prefix `faulty_read` acts on.
MARKERS = {b"CXR-FAULT-HANG": b"HANG", b"CXR-FAULT-SEGV": b"SEGV"}


def pacs_faulty_read(data: bytes, name: str, *, max_pixels: int) -> tuple[Any, Any]:
    """`faulty_read`, with the fault chosen by a marker anywhere in the film."""
    for marker, prefix in MARKERS.items():
        if marker in data:
            return faulty_read(prefix + data, name, max_pixels=max_pixels)
    return faulty_read(data, name, max_pixels=max_pixels)


if __name__ == "__main__":
    from cxrkit.io.decode_worker import main

    sys.exit(main(sys.argv[1:], read=pacs_faulty_read))
