"""`cxr explain`: CAM heat maps over films, boxes from them, as PNG / .npy / JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from cxrkit.cli import dicom_flags
from cxrkit.io.atomic import atomic_write_text

console = Console(stderr=True)


def register(app: typer.Typer) -> None:
    """Attach `explain` to the top-level app."""
    app.command("explain")(explain_cmd)


def explain_cmd(
    model: Annotated[Path, typer.Argument(help="model file or run directory")],
    images: Annotated[list[str], typer.Argument(help="films, folders or globs")],
    out: Annotated[Path, typer.Option(help="folder for overlays, maps and explain.json")],
    method: Annotated[
        str,
        typer.Option(
            help="gradcam | gradcam++ | scorecam | eigencam | layercam (scorecam runs the "
            "model once per CAM channel: slow on CPU; eigencam ignores --class)"
        ),
    ] = "gradcam",
    class_name: Annotated[
        str | None, typer.Option("--class", help="class to explain (default: the predicted one)")
    ] = None,
    save_npy: Annotated[
        bool, typer.Option("--save-npy", help="also write the raw map (original size) as .npy")
    ] = False,
    box_threshold: Annotated[
        float,
        typer.Option(
            min=0.0, max=1.0, help="boxes around regions >= this fraction of the map's peak"
        ),
    ] = 0.5,
    boxes: Annotated[bool, typer.Option(help="draw the boxes on the overlay")] = True,
    alpha: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="overlay opacity at the hottest point")
    ] = 0.5,
    lungs: Annotated[
        bool, typer.Option(help="report the share of heat inside the lungs (lung model)")
    ] = True,
    dicom_out: Annotated[Path | None, typer.Option(help=dicom_flags.DICOM_OUT_HELP)] = None,
    uid_root: Annotated[str | None, typer.Option(help=dicom_flags.UID_ROOT_HELP)] = None,
) -> None:
    """Heat map per film for the predicted (or --class) class, overlaid at original size."""
    import numpy as np

    from cxrkit.classifier import Classifier
    from cxrkit.classifier.paths import require_films
    from cxrkit.errors import ImageReadError, ModelOutputError
    from cxrkit.explain import Box, draw_boxes, overlay_heatmap, save_png
    from cxrkit.io import read_image

    clf = Classifier.load(model, device="cpu")  # heat maps on the input predict uses
    files = require_films(images)
    out.mkdir(parents=True, exist_ok=True)
    lung_model = _lung_model() if lungs else None
    dicom = None
    if dicom_out is not None:  # SR + this heat map as a secondary capture, per DICOM film
        dicom = dicom_flags.ExplainDicom(clf, dicom_out, uid_root=uid_root)
    results: list[dict[str, Any]] = []
    for path in files:
        try:
            image, _meta = read_image(path)
        except ImageReadError as exc:
            console.print(f"[yellow]skipped[/] {escape(str(exc))}")
            results.append({"path": str(path), "error": exc.reason})
            continue
        row, heatmap, info = clf.explain_row(
            image, str(path), method=method, class_name=class_name, box_threshold=box_threshold
        )
        if heatmap is None:  # a non-finite output is an error, never a class
            exc = ModelOutputError(f"no heat map: {row['error']}")
            console.print(f"[red]no map[/] {escape(str(path))}: {escape(str(exc))}")
            results.append({"path": str(path), "error": str(exc)})
            continue
        stem = _unique_stem(out, path, results)
        rgb = overlay_heatmap(image, heatmap, alpha=alpha)
        if boxes:
            rgb = draw_boxes(rgb, [Box(**b) for b in info["boxes"]])
        info["overlay"] = str(save_png(rgb, out / f"{stem}_{_slug(method)}.png"))
        if save_npy:
            np.save(out / f"{stem}_{_slug(method)}.npy", heatmap.astype(np.float32))
            info["npy"] = str(out / f"{stem}_{_slug(method)}.npy")
        if lung_model is not None:
            info["lung_energy"] = _lung_energy(lung_model, image, heatmap, info.get("view"))
        if dicom is not None:
            dicom.add(path, row, image, heatmap)
        results.append({"path": str(path), **info})
        warning = f" [yellow]warning: {escape(info['warning'])}[/]" if info.get("warning") else ""
        console.print(
            f"{escape(str(path))}: {info['class']} p={info['probability']:.3f} "
            f"-> {info['overlay']}{warning}"
        )
    atomic_write_text(out / "explain.json", json.dumps(results, indent=2))
    if dicom is not None:
        dicom.report()
    console.print(
        f"explained {sum('error' not in r for r in results)} film(s); {out / 'explain.json'}"
    )


def _lung_model() -> Any:
    """The shipped lung model when cxrkit.segment provides one, else None (optional)."""
    try:
        from cxrkit.segment import load_lung_model

        return load_lung_model()
    except Exception:  # no segment package, no shipped model: the measure is optional
        return None


def _lung_energy(lung_model: Any, image: Any, heatmap: Any, view: str | None) -> float | None:
    """Share of the map inside the lung mask; None where the lung model has no mask to
    give (a view it does not support). `view` is the film's screened view, when known."""
    from cxrkit.errors import UnsupportedViewError
    from cxrkit.segment import heatmap_energy_in_mask, segment_lungs

    if view is not None and view not in lung_model.views:
        return None  # already screened: no second pass of the screening net
    try:
        mask = segment_lungs(image, lung_model, check_view=view is None)
    except UnsupportedViewError:  # a lateral film: no lung mask, so no lung share
        return None
    value = float(heatmap_energy_in_mask(heatmap, mask))
    return None if value != value else round(value, 4)  # NaN -> None


def _slug(method: str) -> str:
    return method.lower().replace("+", "p")


def _unique_stem(out: Path, path: Path, done: list[dict[str, Any]]) -> str:
    stem = path.stem
    used = {Path(r["path"]).stem for r in done}
    return stem if stem not in used else f"{stem}_{len(done)}"
