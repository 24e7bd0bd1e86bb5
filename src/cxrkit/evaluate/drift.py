"""Batch drift report: how a batch of films compares with the films a model was trained on."""

from __future__ import annotations

import json
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.io.atomic import atomic_write_text

DRIFT_JSON = "drift.json"
DRIFT_HTML = "drift.html"
DRIFT_PNG = "ood_scores.png"


def drift_summary(
    rows: Sequence[dict[str, Any]], card: ModelCard | dict[str, Any]
) -> dict[str, Any]:
    """Share of flagged films, predicted class rates vs the training prior, score summary."""
    card = ModelCard.from_dict(card)
    good = [r for r in rows if "error" not in r]
    classes = list(card.class_names)
    counts = card.provenance.class_counts
    total = sum(counts.values())
    prior = {c: counts.get(c, 0) / total for c in classes} if total else None
    predicted = {c: 0 for c in classes}
    for r in good:
        for label in filter(None, str(r.get("label", "")).split("|")):
            if label in predicted:
                predicted[label] += 1
    scores = [r["ood_score"] for r in good if r.get("ood_score") is not None]
    flagged = sum(bool(r.get("out_of_distribution")) for r in good)
    ood = card.screening.ood or {}
    expected = 1.0 - float(ood["quantile"]) if ood else None
    summary: dict[str, Any] = {
        "films": len(rows),
        "unreadable": len(rows) - len(good),
        "ood_available": bool(scores),
        "ood_flagged": flagged,
        "ood_flagged_rate": flagged / len(good) if good and scores else None,
        "ood_expected_rate": expected,
        "ood_threshold": ood.get("threshold"),
        "ood_score_median": float(np.median(scores)) if scores else None,
        "predicted_rate": {c: n / len(good) for c, n in predicted.items()} if good else None,
        "training_prior": prior,
        "warnings": [],
    }
    rate = summary["ood_flagged_rate"]
    if rate is not None and expected is not None and rate > max(3 * expected, 0.05):
        summary["warnings"].append(
            f"{rate:.0%} of films are out of distribution (about {expected:.0%} expected on "
            "films like the training films): this batch differs from the training data"
        )
    if prior and summary["predicted_rate"] and card.task != "multilabel":
        for c in classes:
            gap = summary["predicted_rate"][c] - prior[c]
            if abs(gap) > 0.15:
                summary["warnings"].append(
                    f"{c!r} is predicted for {summary['predicted_rate'][c]:.0%} of films, "
                    f"{prior[c]:.0%} in the training films"
                )
    return summary


def write_drift_report(rows: Sequence[dict[str, Any]], card: ModelCard, folder: str | Path) -> Path:
    """Write drift.json, ood_scores.png and drift.html into `folder`; return the HTML path."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    summary = drift_summary(rows, card)
    atomic_write_text(out / DRIFT_JSON, json.dumps(summary, indent=2) + "\n")
    scores = [r["ood_score"] for r in rows if r.get("ood_score") is not None]
    ood = dict(card.screening.ood or {})
    figure = _plot_scores(scores, ood, out / DRIFT_PNG) if scores else None
    (out / DRIFT_HTML).write_text(_html(summary, figure), encoding="utf-8")
    return out / DRIFT_HTML


def _plot_scores(scores: list[float], ood: dict[str, Any], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    edges = np.asarray(ood.get("val_edges") or np.linspace(0, max(scores) * 1.1, 41))
    top = max(float(edges[-1]), max(scores) * 1.05)
    bins = np.linspace(0, top, len(edges))
    fig, ax = plt.subplots(figsize=(6, 3.2), dpi=110)
    if ood.get("val_histogram"):
        val = np.asarray(ood["val_histogram"], dtype=float)
        centres = (edges[:-1] + edges[1:]) / 2
        ax.hist(
            centres,
            bins=bins,
            weights=val / max(val.sum(), 1),
            alpha=0.6,
            label="validation films (training source)",
        )
    ax.hist(
        scores,
        bins=bins,
        weights=np.full(len(scores), 1 / len(scores)),
        alpha=0.6,
        label="this batch",
    )
    if ood.get("threshold") is not None:
        ax.axvline(ood["threshold"], color="k", ls="--", lw=1, label="flag threshold")
    ax.set_xlabel("out-of-distribution score")
    ax.set_ylabel("share of films")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _html(summary: dict[str, Any], figure: Path | None) -> str:
    import base64

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1%}"

    rows = [
        ("Films", str(summary["films"])),
        ("Unreadable", str(summary["unreadable"])),
        ("Out of distribution", f"{summary['ood_flagged']} ({pct(summary['ood_flagged_rate'])})"),
        ("Expected on training-like films", pct(summary["ood_expected_rate"])),
    ]
    prior = summary.get("training_prior") or {}
    for c, v in (summary.get("predicted_rate") or {}).items():
        rows.append((f"Predicted {c}", f"{pct(v)} (training films: {pct(prior.get(c))})"))
    table = "".join(f"<tr><th>{escape(k)}</th><td>{escape(v)}</td></tr>" for k, v in rows)
    warns = "".join(f"<li>{escape(w)}</li>" for w in summary["warnings"])
    img = ""
    if figure is not None:
        data = base64.b64encode(figure.read_bytes()).decode("ascii")
        img = f'<img alt="OOD scores" src="data:image/png;base64,{data}">'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        "<title>cxrkit drift report</title></head><body>"
        "<h1>Drift report</h1>"
        + (f"<ul>{warns}</ul>" if warns else "<p>No drift warning.</p>")
        + f"<table>{table}</table>{img}</body></html>"
    )
