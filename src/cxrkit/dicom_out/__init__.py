"""DICOM outputs: a structured report of the findings and a heat-map Secondary Capture per film.

Names are imported on first use (`cxrkit.lazy`), so importing the package needs no highdicom.
"""

from __future__ import annotations

from cxrkit.lazy import lazy_exports

_EXPORTS = {
    "NOTICE": "overlay",
    "build_overlay": "overlay",
    "burn_notice": "overlay",
    "read_source": "source",
    "source_header": "source",
    "build_sr": "sr",
    "reported_classes": "sr",
    "check_uid_root": "uids",
    "new_uid": "uids",
    "model_identity": "identity",
    "NO_STUDY": "writer",
    "DicomResultWriter": "writer",
    "DicomResults": "writer",
    "is_dicom_file": "writer",
    "save_results": "writer",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
