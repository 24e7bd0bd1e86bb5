"""Evaluation figures (confusion, ROC, PR, reliability, training curves) written as PNG files."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from sklearn.metrics import average_precision_score, precision_recall_curve, roc_curve

from cxrkit.evaluate.validation import check_inputs, one_hot

DPI = 110
FIGSIZE = (5.0, 4.5)
_MANY = 6  # above this many curves, the legend moves outside the axes


def _figure(figsize: tuple[float, float] = FIGSIZE) -> Figure:
    """A pyplot-free figure on the Agg canvas: no display, no global backend change."""
    fig = Figure(figsize=figsize, dpi=DPI)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=DPI, bbox_inches="tight")
    return path


def _colors(n: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _curve_columns(
    y_true: Any, probs: Any, class_names: Sequence[str], task: str
) -> tuple[np.ndarray, np.ndarray, list[str], list[int]]:
    """0/1 targets, scores, names and the columns to draw (binary: the positive one only)."""
    y, p, names = check_inputs(y_true, probs, class_names, task)
    onehot = y if task == "multilabel" else one_hot(y, p.shape[1])
    cols = [1] if task == "binary" else list(range(p.shape[1]))
    return onehot, p, names, cols


def _auc_label(
    name: str, j: int, onehot: np.ndarray, p: np.ndarray, metrics: Mapping | None
) -> str:
    stats = (metrics or {}).get("per_class", {}).get(name, {})
    auc, ci = stats.get("auc"), stats.get("auc_ci")
    if auc is None and metrics is None:
        from sklearn.metrics import roc_auc_score

        auc = float(roc_auc_score(onehot[:, j], p[:, j]))
    text = f"{name}: AUC {auc:.3f}" if auc is not None else f"{name}: AUC n/a"
    if ci:
        text += f" ({ci[0]:.3f}\u2013{ci[1]:.3f})"
    return text


def _legend(ax: Any, n: int) -> None:
    if n > _MANY:
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=7, frameon=False)
    else:
        ax.legend(loc="lower right", fontsize=8)


def plot_confusion_matrix(
    cm: Sequence | np.ndarray, class_names: Sequence[str], path: str | Path
) -> Path:
    """Confusion matrix heat map with counts and row percentages; (C, 2, 2) draws one 2x2
    panel per class (multilabel). Returns the PNG path."""
    cm = np.asarray(cm, dtype=np.int64)
    names = [str(c) for c in class_names]
    if cm.ndim == 3:
        return _plot_multilabel_cms(cm, names, path)
    n = cm.shape[0]
    side = max(FIGSIZE[0], 0.55 * n + 2.5)
    fig = _figure((side, side * 0.9))
    ax = fig.add_subplot()
    row_sums = cm.sum(axis=1, keepdims=True)
    frac = np.divide(cm, np.maximum(row_sums, 1))
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true class")
    fontsize = 9 if n <= 6 else 7
    for i in range(n):
        for j in range(n):
            color = "white" if frac[i, j] > 0.5 else "black"
            label = f"{cm[i, j]}\n{100 * frac[i, j]:.0f}%" if row_sums[i, 0] else "0"
            ax.text(j, i, label, ha="center", va="center", color=color, fontsize=fontsize)
    ax.set_xticks(range(n), names, rotation=45 if n > 3 else 0, ha="right" if n > 3 else "center")
    ax.set_yticks(range(n), names)
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title(f"Confusion matrix (n = {int(cm.sum())})")
    return _save(fig, path)


def _plot_multilabel_cms(cm: np.ndarray, names: list[str], path: str | Path) -> Path:
    n = cm.shape[0]
    cols = min(4, n)
    rows = int(np.ceil(n / cols))
    fig = _figure((2.4 * cols + 0.5, 2.3 * rows + 0.6))
    for k in range(n):
        ax = fig.add_subplot(rows, cols, k + 1)
        m = cm[k]
        frac = m / np.maximum(m.sum(axis=1, keepdims=True), 1)
        ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
        for i in range(2):
            for j in range(2):
                color = "white" if frac[i, j] > 0.5 else "black"
                ax.text(j, i, str(m[i, j]), ha="center", va="center", color=color, fontsize=9)
        ax.set_xticks([0, 1], ["pred \u2212", "pred +"], fontsize=7)
        ax.set_yticks([0, 1], ["true \u2212", "true +"], fontsize=7)
        ax.set_title(names[k], fontsize=9)
    fig.suptitle("Per-class confusion matrices")
    fig.tight_layout()
    return _save(fig, path)


def plot_roc_curves(
    y_true: Any,
    probs: Any,
    class_names: Sequence[str],
    task: str,
    path: str | Path,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """ROC curve per class (binary: the positive class), legend with AUC and its CI from
    ``metrics`` when given. Returns the PNG path."""
    onehot, p, names, cols = _curve_columns(y_true, probs, class_names, task)
    wide = len(cols) > _MANY
    fig = _figure((7.5, 4.5) if wide else FIGSIZE)
    ax = fig.add_subplot()
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="grey", label="chance")
    for color, j in zip(_colors(len(cols)), cols, strict=True):
        if onehot[:, j].min() == onehot[:, j].max():
            continue
        fpr, tpr, _ = roc_curve(onehot[:, j], p[:, j])
        ax.plot(fpr, tpr, lw=1.6, color=color, label=_auc_label(names[j], j, onehot, p, metrics))
    if (
        metrics
        and task == "binary"
        and metrics.get("sensitivity") is not None
        and metrics.get("specificity") is not None
    ):
        ax.plot(
            1 - metrics["specificity"],
            metrics["sensitivity"],
            "o",
            color="black",
            ms=5,
            label=f"threshold {metrics['threshold']:.3g}",
        )
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("False positive rate (1 \u2212 specificity)")
    ax.set_ylabel("True positive rate (sensitivity)")
    title = "ROC curve" if task == "binary" else "ROC curves (one vs rest)"
    if metrics and metrics.get("auc") is not None and task != "binary":
        title += f"\nmacro AUC {metrics['auc']:.3f}"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    _legend(ax, len(cols) + 1)
    return _save(fig, path)


def plot_pr_curves(
    y_true: Any,
    probs: Any,
    class_names: Sequence[str],
    task: str,
    path: str | Path,
    metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Precision-recall curve per class (binary: the positive class) with average precision
    and the prevalence baseline. Returns the PNG path."""
    onehot, p, names, cols = _curve_columns(y_true, probs, class_names, task)
    wide = len(cols) > _MANY
    fig = _figure((7.5, 4.5) if wide else FIGSIZE)
    ax = fig.add_subplot()
    for color, j in zip(_colors(len(cols)), cols, strict=True):
        if onehot[:, j].min() == onehot[:, j].max():
            continue
        prec, rec, _ = precision_recall_curve(onehot[:, j], p[:, j])
        stats = (metrics or {}).get("per_class", {}).get(names[j], {})
        ap = stats.get("average_precision")
        if ap is None:
            ap = float(average_precision_score(onehot[:, j], p[:, j]))
        prevalence = float(onehot[:, j].mean())
        ax.plot(rec, prec, lw=1.6, color=color, label=f"{names[j]}: AP {ap:.3f}")
        ax.axhline(prevalence, ls=":", lw=1, color=color)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_xlabel("Recall (sensitivity)")
    ax.set_ylabel("Precision (PPV)")
    ax.set_title(
        "Precision\u2013recall curve" + ("s" if len(cols) > 1 else "") + "\n(dotted: prevalence)"
    )
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        _legend(ax, len(cols))
    return _save(fig, path)


def plot_reliability(reliability: Mapping[str, Any], path: str | Path) -> Path:
    """Reliability diagram from ``metrics['reliability']``: observed vs predicted per bin,
    with the bin counts below. Returns the PNG path."""
    centers = np.asarray(reliability["bin_centers"], dtype=np.float64)
    counts = np.asarray(reliability["counts"], dtype=np.float64)
    acc = np.array([np.nan if a is None else a for a in reliability["accuracies"]], dtype=float)
    conf = np.array([np.nan if c is None else c for c in reliability["confidences"]], dtype=float)
    width = 1.0 / max(len(centers), 1)
    fig = _figure((5.0, 5.2))
    ax, axc = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    ax.plot([0, 1], [0, 1], ls="--", lw=1, color="grey", label="perfect calibration")
    filled = counts > 0
    ax.bar(
        centers[filled],
        acc[filled],
        width=width * 0.9,
        color="#4c72b0",
        alpha=0.8,
        edgecolor="white",
        label="observed",
    )
    ax.plot(conf[filled], acc[filled], "o-", color="#c44e52", ms=3, lw=1, label="bin mean")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    multilabel = "pooled" in str(reliability.get("kind", ""))
    ax.set_ylabel("Observed positive rate" if multilabel else "Accuracy")
    title = "Reliability diagram"
    if reliability.get("ece") is not None:
        title += f" (ECE {reliability['ece']:.3f})"
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", fontsize=8)
    axc.bar(centers, counts, width=width * 0.9, color="grey")
    axc.set_xlabel("Predicted probability" if multilabel else "Confidence (max probability)")
    axc.set_ylabel("Count")
    fig.tight_layout()
    return _save(fig, path)


def plot_training_curves(history: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Losses (left) and metrics such as ``val_auc`` (right) against epoch;
    missing keys and empty histories are tolerated. Returns the PNG path."""
    rows = [dict(r) for r in history or []]
    epochs = [r.get("epoch", i + 1) for i, r in enumerate(rows)]
    keys: list[str] = []
    for r in rows:
        keys += [k for k, v in r.items() if k not in keys and _is_number(v)]
    loss_keys = [k for k in keys if "loss" in k]
    metric_keys = [k for k in keys if k.startswith(("val_", "train_")) and "loss" not in k]
    fig = _figure((10.0, 4.5))
    ax_loss, ax_metric = fig.subplots(1, 2)
    for ax, chosen, ylabel, title in (
        (ax_loss, loss_keys, "Loss", "Loss"),
        (ax_metric, metric_keys, "Value", "Metrics"),
    ):
        for k in chosen:
            xs = [e for e, r in zip(epochs, rows, strict=True) if _is_number(r.get(k))]
            ys = [float(r[k]) for r in rows if _is_number(r.get(k))]
            ax.plot(xs, ys, "o-", ms=3, lw=1.5, label=k)
        if chosen:
            ax.legend(fontsize=8)
        else:
            ax.text(
                0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes, color="grey"
            )
        ax.set_xlabel("Epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(alpha=0.3)
    fig.suptitle("Training curves")
    fig.tight_layout()
    return _save(fig, path)


def _is_number(v: Any) -> bool:
    if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
        return False
    return bool(np.isfinite(v))
