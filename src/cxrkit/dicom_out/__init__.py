"""DICOM outputs: a structured report of the findings and a heat-map Secondary Capture per film."""

from cxrkit.dicom_out.overlay import NOTICE, build_overlay, burn_notice
from cxrkit.dicom_out.source import read_source, source_header
from cxrkit.dicom_out.sr import build_sr, reported_classes
from cxrkit.dicom_out.uids import check_uid_root, new_uid
from cxrkit.dicom_out.writer import (
    NO_STUDY,
    DicomResults,
    DicomResultWriter,
    is_dicom_file,
    model_identity,
    save_results,
)

__all__ = [
    "NO_STUDY",
    "NOTICE",
    "DicomResultWriter",
    "DicomResults",
    "build_overlay",
    "build_sr",
    "burn_notice",
    "check_uid_root",
    "is_dicom_file",
    "model_identity",
    "new_uid",
    "read_source",
    "reported_classes",
    "save_results",
    "source_header",
]
