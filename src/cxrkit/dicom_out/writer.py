"""Per DICOM film: the SR with the findings and the heat-map Secondary Capture, built or saved.

`DicomResultWriter` is what `cxr predict/explain --dicom-out` and `cxr pacs run` share. It
holds the `Classifier`: `predict_file(path)` decodes a DICOM film once and runs the model
once (`Classifier.explain_row`: the `cxr predict` row and the heat map from the same
input); `add` / `build` take a row (and the film and heat map, when the caller has them),
build both objects in the source's study (new series under the UID root) and save or
return them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from pydicom.dataset import Dataset

from cxrkit.dicom_out.identity import model_identity
from cxrkit.dicom_out.overlay import build_overlay, burn_notice, overlay_lines
from cxrkit.dicom_out.source import quiet_person_names, read_source
from cxrkit.dicom_out.sr import build_sr
from cxrkit.dicom_out.uids import check_uid_root, new_uid
from cxrkit.errors import CxrkitError

if TYPE_CHECKING:
    from cxrkit.classifier import Classifier

NO_STUDY = "not a DICOM film: there is no study to attach a DICOM report to"


@dataclass
class DicomResults:
    """The two objects written for one source film."""

    source_sop_instance_uid: str
    sr: Dataset
    overlay: Dataset | None


def is_dicom_file(path: str | Path) -> bool:
    """True when the file has the DICOM preamble + 'DICM' magic (what PACS and scanners write)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"


@dataclass
class DicomResultWriter:
    """Builds (and optionally saves) the SR + overlay of films a `Classifier` predicted."""

    classifier: Classifier
    model_path: str | Path | None = None
    uid_root: str | None = None
    method: str = "gradcam"
    alpha: float = 0.5
    overlay: bool = True
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    _stems: dict[str, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.uid_root = check_uid_root(self.uid_root)
        if self.model_path is None:
            self.model_path = self.classifier.path
        self.card = self.classifier.card
        self.model_name, self.model_version = model_identity(self.card, self.model_path)
        self._series: dict[tuple[str, str], str] = {}

    def series_uid(self, study_uid: str, kind: str) -> str:
        """One new SR / overlay series per study and writer (a series never spans studies)."""
        key = (str(study_uid), kind)
        if key not in self._series:
            self._series[key] = new_uid(self.uid_root)
        return self._series[key]

    def build(
        self,
        source: Dataset,
        row: dict[str, Any],
        image: np.ndarray | None = None,
        heatmap: np.ndarray | None = None,
        film_path: str | Path | None = None,
    ) -> DicomResults:
        """SR and overlay for one film. `source` is its header (`read_source`); `image`
        (as `read_image` gives it) is read from `film_path` and `heatmap` computed when None."""
        with quiet_person_names():
            sr = build_sr(
                source,
                row,
                self.card,
                model_name=self.model_name,
                model_version=self.model_version,
                uid_root=self.uid_root,
                series_uid=self.series_uid(source.StudyInstanceUID, "sr"),
            )
        sc = None
        if self.overlay:
            if image is None:
                if film_path is None:
                    raise CxrkitError("an overlay needs the film: pass image or film_path")
                from cxrkit.io import read_image

                image, _ = read_image(film_path)
            if heatmap is None:
                heatmap = self._heatmap(image)
            from cxrkit.explain import overlay_heatmap

            rgb = overlay_heatmap(image, heatmap, alpha=self.alpha)
            rgb = burn_notice(rgb, overlay_lines(row, self.model_name, self.model_version))
            series = self.series_uid(source.StudyInstanceUID, "overlay")
            sc = build_overlay(source, rgb, uid_root=self.uid_root, series_uid=series)
        return DicomResults(str(source.SOPInstanceUID), sr, sc)

    def add(
        self,
        path: str | Path,
        row: dict[str, Any],
        out_dir: Path,
        image: np.ndarray | None = None,
        heatmap: np.ndarray | None = None,
    ) -> list[Path]:
        """Build and save the outputs of the film at `path` into `out_dir`; a film that is
        not DICOM, or fails, is recorded in `skipped` with the reason (nothing raised)."""
        if "error" in row:
            self.skipped.append((str(path), str(row["error"])))
            return []
        if not is_dicom_file(path):
            self.skipped.append((str(path), NO_STUDY))
            return []
        try:
            results = self.build(read_source(path), row, image, heatmap, film_path=path)
            paths = save_results(results, out_dir, stem=self._stem(results))
        except CxrkitError as exc:
            self.skipped.append((str(path), str(exc)))
            return []
        except Exception as exc:  # one odd header must not stop a batch
            self.skipped.append((str(path), f"{type(exc).__name__}: {exc}"))
            return []
        self.written += paths
        return paths

    def predict_file(
        self, path: str | Path
    ) -> tuple[dict[str, Any], np.ndarray | None, np.ndarray | None]:
        """(the film's `cxr predict` row, the film, its heat map) from one decode and one
        prediction forward pass; an unreadable film gives a row with `error` and no film.
        The heat map is None when no overlay is asked for or the row has an error."""
        from cxrkit.errors import ImageReadError
        from cxrkit.io import read_image

        try:
            image, _ = read_image(path)
        except ImageReadError as exc:
            return {"path": str(path), "error": exc.reason}, None, None
        row, heatmap = self.predict_image(image, str(path))
        return row, image, heatmap

    def predict_image(
        self, image: np.ndarray, name: str
    ) -> tuple[dict[str, Any], np.ndarray | None]:
        """(row, heat map) of a film already decoded (e.g. in a `DecodePool`), from one
        prediction forward pass; the heat map is None without an overlay or on an error."""
        if not self.overlay:
            row, _ = self.classifier.assess(image, name)
            return row, None
        row, heatmap, _ = self.classifier.explain_row(image, name, method=self.method, screen=True)
        return row, heatmap

    def _stem(self, results: DicomResults) -> str:
        """The source's SOP Instance UID; `_2`, `_3`... when a run meets it again (copies)."""
        stem = results.source_sop_instance_uid
        self._stems[stem] = self._stems.get(stem, 0) + 1
        return stem if self._stems[stem] == 1 else f"{stem}_{self._stems[stem]}"

    def _heatmap(self, image: np.ndarray) -> np.ndarray:
        heatmap, _ = self.classifier.explain(image, self.method, screen=False)
        return heatmap


def save_results(results: DicomResults, out_dir: Path, stem: str | None = None) -> list[Path]:
    """Write `<stem>_sr.dcm` (and `<stem>_overlay.dcm`) into `out_dir`; the paths.

    `stem` defaults to the source film's SOP Instance UID.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = stem or results.source_sop_instance_uid
    paths = [out_dir / f"{stem}_sr.dcm"]
    results.sr.save_as(paths[0], enforce_file_format=True)
    if results.overlay is not None:
        paths.append(out_dir / f"{stem}_overlay.dcm")
        results.overlay.save_as(paths[1], enforce_file_format=True)
    return paths
