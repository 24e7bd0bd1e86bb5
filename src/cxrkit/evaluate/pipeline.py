"""One call from predictions to metrics.json, figures and report.html in an output folder."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.evaluate.metrics import compute_metrics
from cxrkit.evaluate.report import write_report

FILES = {
    "metrics": "metrics.json",
    "confusion_matrix": "confusion_matrix.png",
    "roc": "roc.png",
    "pr": "pr.png",
    "reliability": "reliability.png",
    "training_curves": "training_curves.png",
    "report": "report.html",
}


def evaluate_predictions(
    y_true: Sequence | np.ndarray,
    probs: Sequence | np.ndarray,
    class_names: Sequence[str],
    task: str,
    out_dir: str | Path,
    thresholds: float | Sequence[float] | None = None,
    title: str = "cxrkit evaluation",
    model_card: ModelCard | Mapping[str, Any] | None = None,
    n_bootstrap: int = 1000,
    *,
    seed: int = 0,
    history: Sequence[Mapping[str, Any]] | None = None,
    comparison: Sequence[Mapping[str, Any]] | None = None,
    selection: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Compute metrics and write ``metrics.json``, ``confusion_matrix.png``, ``roc.png``,
    ``pr.png``, ``reliability.png`` (plus ``training_curves.png`` when ``history`` is given)
    and ``report.html`` into ``out_dir``. Returns the metrics dict. ``comparison`` rows
    (`cxrkit.evaluate.transfer.comparison_rows`) appear as "Internal vs external".
    ``selection`` (`cxrkit.data.selection.selection_flag`) says whether the model card lists
    this set as one that chose something: its figures are then marked "used for selection:
    optimistic" (metrics.json ``used_for_selection``, the report's warnings)."""
    from cxrkit.evaluate import plots as P  # matplotlib is imported only here

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    metrics = compute_metrics(
        y_true, probs, class_names, task, thresholds=thresholds, n_bootstrap=n_bootstrap, seed=seed
    )
    if selection is not None:  # `cxrkit.data.selection.selection_flag`: did this set choose?
        metrics["selection"] = dict(selection)
        metrics["used_for_selection"] = bool(selection.get("used_for_selection"))
        if metrics["used_for_selection"]:
            metrics["warnings"] = [selection["note"], *(metrics.get("warnings") or [])]
    (out / FILES["metrics"]).write_text(
        json.dumps(metrics, indent=2, allow_nan=False) + "\n", encoding="utf-8"
    )
    names = metrics["class_names"]
    figures: dict[str, Path] = {
        "confusion_matrix": P.plot_confusion_matrix(
            metrics["confusion_matrix"], names, out / FILES["confusion_matrix"]
        ),
        "roc": P.plot_roc_curves(y_true, probs, names, task, out / FILES["roc"], metrics),
        "pr": P.plot_pr_curves(y_true, probs, names, task, out / FILES["pr"], metrics),
        "reliability": P.plot_reliability(metrics["reliability"], out / FILES["reliability"]),
    }
    if history:
        figures["training_curves"] = P.plot_training_curves(history, out / FILES["training_curves"])
    write_report(out, metrics, figures, title=title, model_card=model_card, comparison=comparison)
    return metrics
