"""Stable UIDs for the PACS loop's results: the same film and model always give the same SR.

A rerun after a crash between STOW-RS and the state update (or a STOW retried after a
lost answer) then stores the same instance again, which a server keeps once, instead of
a second SR. The UIDs are derived from the source SOP Instance UID (the study for the
series) and the model's name and version: under `--uid-root` by pydicom's hash of them,
without a root as a `2.25.` name-based (SHA-1, RFC 4122 version 5) UUID.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from pydicom.uid import generate_uid

from cxrkit.dicom_out.uids import check_uid_root

#: Namespace of the name-based UUIDs (uuid5 of the URL of this scheme's description).
_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "cxrkit:pacs:result-uids:v1")


def stable_uid(root: str | None, *parts: str) -> str:
    """A UID that depends only on `root` and `parts`."""
    root = check_uid_root(root)
    if root is None:
        return f"2.25.{uuid.uuid5(_NAMESPACE, chr(31).join(parts)).int}"
    return str(generate_uid(prefix=f"{root}.", entropy_srcs=["cxrkit-pacs-v1", *parts]))


@dataclass(frozen=True)
class ResultUids:
    """Series and SOP Instance UIDs of a film's SR and overlay."""

    sr_series: str
    sr: str
    overlay_series: str
    overlay: str


def result_uids(study: str, sop: str, model: str, root: str | None) -> ResultUids:
    """The UIDs of the results of film `sop` (in `study`) by `model` ('name version').

    One SR series and one overlay series per study and model, as `cxr predict --dicom-out`
    makes per study and run.
    """
    return ResultUids(
        sr_series=stable_uid(root, "sr-series", study, model),
        sr=stable_uid(root, "sr", sop, model),
        overlay_series=stable_uid(root, "overlay-series", study, model),
        overlay=stable_uid(root, "overlay", sop, model),
    )


def pin_uids(ds: Any, series_uid: str, sop_uid: str) -> None:
    """Give a built result its stable series and SOP Instance UIDs (file meta too)."""
    ds.SeriesInstanceUID = series_uid
    ds.SOPInstanceUID = sop_uid
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "MediaStorageSOPInstanceUID" in meta:
        meta.MediaStorageSOPInstanceUID = sop_uid
