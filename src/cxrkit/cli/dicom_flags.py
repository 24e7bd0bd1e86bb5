"""`--dicom-out DIR` / `--uid-root` of `cxr predict` and `cxr explain`: SR + overlay per film."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
    net: Any,
    card: dict,
    model: Path,
    uid_root: str | None,
    runtime: str = "torch",
    check_only: bool = False,
    **kw: Any,
) -> Any:
    """A `DicomResultWriter` for the flags, or a flag-worded error (no highdicom, ONNX,
    bad UID root); `check_only` checks the flags without a model."""
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
    return DicomResultWriter(net, card, model_path=model, uid_root=uid_root, **kw)


def dicom_outputs(rows: Iterable[dict], writer: Any, folder: Path) -> Iterator[dict]:
    """Pass prediction rows through, writing the DICOM outputs of each DICOM film."""
    for row in rows:
        writer.add(row["path"], row, folder)
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
    """`cxr explain --dicom-out`: the film's `cxr predict` row plus the map just computed."""

    def __init__(self, net: Any, card: dict, model: Path, folder: Path, **kw: Any) -> None:
        from cxrkit.models.ood import load_feature_reference

        self.net, self.card, self.folder = net, card, folder
        self.writer = make_writer(net, card, model, **kw)
        self.reference = load_feature_reference(model)

    def add(self, path: Path, image: Any, heatmap: Any) -> None:
        """Write the SR + overlay of one explained film (non-DICOM films are only noted)."""
        from cxrkit.dicom_out import is_dicom_file
        from cxrkit.infer.predict import predict_batches

        row: dict = {"path": str(path)}
        if is_dicom_file(path):  # the same numbers `cxr predict` prints
            rows = predict_batches(
                self.net, self.card, [Path(path)], num_workers=0, reference=self.reference
            )
            row = next(iter(rows))
        self.writer.add(path, row, self.folder, image=image, heatmap=heatmap)

    def report(self) -> None:
        """Print what was written and skipped."""
        report_dicom(self.writer, self.folder)
