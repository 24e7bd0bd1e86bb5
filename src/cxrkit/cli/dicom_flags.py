"""`--dicom-out DIR` / `--uid-root` of `cxr predict` and `cxr explain`: SR + overlay per film."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from cxrkit.errors import CxrkitError

console = Console(stderr=True)

DICOM_OUT_HELP = (
    "folder for a DICOM structured report + heat-map secondary capture per DICOM film "
    "(same study, new series); PNG/JPEG films have no study to attach them to"
)
UID_ROOT_HELP = "UID root of the new DICOM series and instances (your organisation's OID)"


def make_writer(
    classifier: Any,
    uid_root: str | None,
    runtime: str = "torch",
    check_only: bool = False,
    **kw: Any,
) -> Any:
    """A `DicomResultWriter` holding `classifier` for the flags, or a flag-worded error (no
    highdicom, ONNX, bad UID root); `check_only` checks the flags without a model."""
    if runtime != "torch":
        raise CxrkitError("--dicom-out needs --runtime torch (the heat map needs gradients)")
    try:
        from cxrkit.dicom_out import DicomResultWriter
    except ImportError as exc:  # the optional 'dicom' extra
        raise CxrkitError(
            f"--dicom-out needs highdicom ({exc}): pip install 'cxrkit[dicom]'"
        ) from exc
    if check_only:
        from cxrkit.dicom_out import check_uid_root

        check_uid_root(uid_root)
        return None
    return DicomResultWriter(classifier, uid_root=uid_root, **kw)


def predict_with_dicom(
    classifier: Any, files: list[Path], writer: Any, folder: Path, **predict_kw: Any
) -> Iterator[dict]:
    """The rows of `cxr predict --dicom-out`, in the order of `files`: each DICOM film is
    decoded once and run once (`DicomResultWriter.predict_file`: its row and heat map from
    the same input) and gets its SR + overlay; other films are predicted in batches."""
    from cxrkit.dicom_out import is_dicom_file

    dicom = [is_dicom_file(f) for f in files]
    others = classifier.predict_iter(
        [f for f, is_dcm in zip(files, dicom, strict=True) if not is_dcm], **predict_kw
    )
    for path, is_dcm in zip(files, dicom, strict=True):
        if is_dcm:
            row, image, heatmap = writer.predict_file(path)
            writer.add(path, row, folder, image=image, heatmap=heatmap)
        else:
            row = next(others)
            writer.add(path, row, folder)  # noted: no study to attach a report to
        yield row
    report_dicom(writer, folder)


def report_dicom(writer: Any, folder: Path) -> None:
    """Print what --dicom-out wrote and which films it skipped, and why."""
    from cxrkit.dicom_out import NO_STUDY

    no_study = [p for p, why in writer.skipped if why == NO_STUDY]
    for path, why in writer.skipped:
        if why != NO_STUDY:
            console.print(f"[yellow]--dicom-out skipped[/] {escape(path)}: {escape(why)}")
    if no_study:
        console.print(
            f"[yellow]--dicom-out:[/] {len(no_study)} film(s) are not DICOM (e.g. "
            f"{escape(no_study[0])}): there is no study to attach a DICOM report to; "
            "their results are in the usual outputs only",
            highlight=False,
        )
    console.print(f"--dicom-out: wrote {len(writer.written)} DICOM file(s) to {folder}")


class ExplainDicom:
    """`cxr explain --dicom-out`: the film's `cxr predict` row plus the map just computed,
    both from one `Classifier.explain_row` call."""

    def __init__(self, classifier: Any, folder: Path, **kw: Any) -> None:
        self.folder = folder
        self.writer = make_writer(classifier, **kw)

    def add(self, path: Path, row: dict, image: Any, heatmap: Any) -> None:
        """Write the SR + overlay of one explained film (non-DICOM films are only noted)."""
        self.writer.add(path, row, self.folder, image=image, heatmap=heatmap)

    def report(self) -> None:
        """Print what was written and skipped."""
        report_dicom(self.writer, self.folder)
