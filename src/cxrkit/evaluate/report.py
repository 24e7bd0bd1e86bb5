"""Self-contained offline HTML report: metric tables, model card and base64-embedded figures."""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from cxrkit.card import ModelCard

_CSS = """
body{font-family:-apple-system,'Segoe UI',Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em;margin-bottom:.2em}h2{font-size:1.2em;margin-top:1.6em;
border-bottom:1px solid #ddd;padding-bottom:.2em}
table{border-collapse:collapse;margin:.5em 0;font-size:.92em}
th,td{border:1px solid #ddd;padding:.3em .7em;text-align:right}
th:first-child,td:first-child{text-align:left}th{background:#f3f5f8}
tr:nth-child(even) td{background:#fafafa}
.muted{color:#666;font-size:.9em}
.warn{background:#fff6e0;border:1px solid #f0c36d;padding:.5em 1em;border-radius:4px}
.figs{display:flex;flex-wrap:wrap;gap:1.2em}
figure{margin:0;border:1px solid #eee;padding:.5em;border-radius:4px;background:#fff}
figure img{max-width:100%;height:auto;display:block}
figcaption{text-align:center;color:#444;font-size:.9em;margin-top:.3em}
"""

_PLOT_CAPTIONS = {
    "confusion_matrix": "Confusion matrix",
    "roc": "ROC curves",
    "pr": "Precision\u2013recall curves",
    "reliability": "Calibration (reliability diagram)",
    "training_curves": "Training curves",
}
_MIME = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".svg": "image/svg+xml"}
_CARD_LABELS = {
    "architecture": "Architecture",
    "task": "Task",
    "class_names": "Classes",
    "classes": "Classes",
    "input_size": "Input size",
    "training_data": "Training data",
    "dataset": "Training data",
    "thresholds": "Thresholds",
    "threshold_method": "Threshold method",
    "weights": "Initial weights",
    "preprocessing": "Preprocessing",
    "training": "Training",
}
_CARD_SKIP = {"metrics", "history"}


def _fmt(value: Any, digits: int = 3) -> str:
    """Number -> fixed decimals; None -> 'n/a'; anything else -> escaped text."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _fmt_ci(value: Any, ci: Any) -> str:
    text = _fmt(value)
    if value is not None and ci:
        text += f' <span class="muted">({_fmt(ci[0])}\u2013{_fmt(ci[1])})</span>'
    return text


def _table(header: list[str], rows: list[list[str]]) -> str:
    """Rows hold already-escaped cell HTML; the header is escaped here."""
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _headline(m: Mapping[str, Any]) -> str:
    task = m.get("task")
    level = int(round(100 * m.get("bootstrap", {}).get("ci_level", 0.95)))
    auc_name = "ROC AUC" if task == "binary" else "ROC AUC (macro, one vs rest)"
    rows = [["Films (n)", _fmt(m.get("n"))], ["Task", _fmt(task)]]
    if task == "multilabel":
        rows.append(["Exact-match accuracy", _fmt(m.get("accuracy"))])
        rows.append(["Hamming accuracy", _fmt(m.get("hamming_accuracy"))])
    else:
        rows.append(["Accuracy", _fmt_ci(m.get("accuracy"), m.get("accuracy_ci"))])
    rows.append(["Balanced accuracy", _fmt(m.get("balanced_accuracy"))])
    rows.append(["F1 (macro)", _fmt(m.get("f1_macro"))])
    rows.append([f"{auc_name} ({level}% CI)", _fmt_ci(m.get("auc"), m.get("auc_ci"))])
    if task == "binary":
        rows.append(["Threshold (positive if p \u2265 t)", _fmt(m.get("threshold"))])
        for key, label in (
            ("sensitivity", "Sensitivity"),
            ("specificity", "Specificity"),
            ("ppv", "PPV (precision)"),
            ("npv", "NPV"),
        ):
            rows.append([label, _fmt_ci(m.get(key), m.get(f"{key}_ci"))])
        rows.append(["Predicted positive rate", _fmt(m.get("predicted_positive_rate"))])
        rows.append(["True positive rate (prevalence)", _fmt(m.get("prevalence"))])
    rows.append(["Expected calibration error (15 bins)", _fmt(m.get("ece"))])
    return _table(["Metric", "Value"], rows)


def _comparison(rows: Sequence[Mapping[str, Any]]) -> str:
    """Internal vs external sets side by side (rows of `evaluate.transfer.comparison_rows`)."""
    binary = any("sensitivity" in r for r in rows)
    header = ["Set", "Films", "AUC (95% CI)", "Accuracy (95% CI)"]
    if binary:
        header += ["Sensitivity", "Specificity", "Predicted positive", "True positive rate"]
    header.append("ECE")
    body = []
    for r in rows:
        name = str(r.get("set", ""))
        if r.get("used_for_selection"):
            name += " (used for selection: optimistic)"
        row = [
            escape(name),
            _fmt(r.get("n")),
            _fmt_ci(r.get("auc"), r.get("auc_ci")),
            _fmt_ci(r.get("accuracy"), r.get("accuracy_ci")),
        ]
        if binary:
            row += [
                _fmt_ci(r.get("sensitivity"), r.get("sensitivity_ci")),
                _fmt_ci(r.get("specificity"), r.get("specificity_ci")),
                _fmt(r.get("predicted_positive_rate")),
                _fmt(r.get("prevalence")),
            ]
        row.append(_fmt(r.get("ece")))
        body.append(row)
    return _table(header, body)


def _per_class(m: Mapping[str, Any]) -> str:
    per_class = m.get("per_class") or {}
    multilabel = m.get("task") == "multilabel"
    header = ["Class", "Support", "Precision", "Recall", "F1"]
    if multilabel:
        header += ["Specificity", "Threshold"]
    header += ["AUC (CI)", "Avg. precision"]
    if multilabel:
        header.append("ECE")
    rows = []
    for name, s in per_class.items():
        row = [
            escape(str(name)),
            _fmt(s.get("support")),
            _fmt(s.get("precision")),
            _fmt(s.get("recall")),
            _fmt(s.get("f1")),
        ]
        if multilabel:
            row += [_fmt(s.get("specificity")), _fmt(s.get("threshold"))]
        row += [_fmt_ci(s.get("auc"), s.get("auc_ci")), _fmt(s.get("average_precision"))]
        if multilabel:
            row.append(_fmt(s.get("ece")))
        rows.append(row)
    return _table(header, rows)


def _confusion_table(m: Mapping[str, Any]) -> str:
    cm, names = m.get("confusion_matrix"), m.get("class_names") or []
    if m.get("task") == "multilabel" or not cm or len(names) > 15:
        return ""
    rows = [[escape(str(names[i]))] + [_fmt(int(v)) for v in r] for i, r in enumerate(cm)]
    header = ["true \\ predicted"] + [str(n) for n in names]
    return "<h3>Confusion matrix (counts)</h3>" + _table(header, rows)


def _card_value(value: Any, limit: int = 300) -> str:
    if isinstance(value, (list, tuple)) and all(not isinstance(v, (dict, list)) for v in value):
        text = ", ".join(str(v) for v in value)
    elif isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, default=str, ensure_ascii=False)
    else:
        text = str(value)
    if len(text) > limit:
        text = text[:limit] + "\u2026"
    return escape(text)


def _card_summary(card: ModelCard | Mapping[str, Any]) -> dict[str, Any]:
    """The card's fields for display, with ``input_size`` / ``training_data`` filled from
    ``preprocessing.size`` / ``training.data`` when not given at the top level."""
    out = card.to_dict() if isinstance(card, ModelCard) else dict(card)
    pre = out.get("preprocessing")
    if "input_size" not in out and isinstance(pre, Mapping) and "size" in pre:
        size = pre["size"]
        out["input_size"] = f"{size} \u00d7 {size} px" if isinstance(size, int) else size
    training = out.get("training")
    has_data = "training_data" in out or "dataset" in out
    if not has_data and isinstance(training, Mapping) and "data" in training:
        out["training_data"] = training["data"]
    return out


def _model_card(card: ModelCard | Mapping[str, Any]) -> str:
    fields = _card_summary(card)
    keys = [k for k in _CARD_LABELS if k in fields]
    keys += [k for k in fields if k not in keys and k not in _CARD_SKIP]
    rows = []
    for k in keys:
        value = fields[k]
        label = _CARD_LABELS.get(k, str(k).replace("_", " ").capitalize())
        if isinstance(value, Mapping) and 0 < len(value) <= 24:
            for sub, v in value.items():
                rows.append([escape(f"{label}: {sub}"), _card_value(v, limit=200)])
        else:
            rows.append([escape(label), _card_value(value)])
    return _table(["Field", "Value"], rows) if rows else ""


def _figures(plots: Mapping[str, str | Path]) -> str:
    items = []
    for key, path in plots.items():
        path = Path(path)
        caption = escape(_PLOT_CAPTIONS.get(key, str(key).replace("_", " ").capitalize()))
        mime = _MIME.get(path.suffix.lower())
        if mime is None or not path.is_file():
            items.append(f"<figure><figcaption>{caption}: figure unavailable</figcaption></figure>")
            continue
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        items.append(
            f'<figure><img src="data:{mime};base64,{data}" alt="{caption}">'
            f"<figcaption>{caption}</figcaption></figure>"
        )
    return f'<div class="figs">{"".join(items)}</div>' if items else ""


def render_report(
    metrics: Mapping[str, Any],
    plots: Mapping[str, str | Path] | None = None,
    title: str = "cxrkit evaluation",
    model_card: ModelCard | Mapping[str, Any] | None = None,
    comparison: Sequence[Mapping[str, Any]] | None = None,
) -> str:
    """The report as one HTML string (no scripts, no external resources).

    `comparison`: headline rows of other sets (internal test split, external sites) shown
    side by side under "Internal vs external".
    """
    names = ", ".join(str(c) for c in metrics.get("class_names") or [])
    boot = metrics.get("bootstrap") or {}
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{escape(title)}</h1>",
        f'<p class="muted">{escape(str(metrics.get("task", "")))} task \u00b7 '
        f"{_fmt(metrics.get('n'))} films \u00b7 classes: {escape(names)}</p>",
    ]
    warns = metrics.get("warnings") or []
    if warns:
        items = "".join(f"<li>{escape(str(w))}</li>" for w in warns)
        parts.append(f'<div class="warn"><strong>Warnings</strong><ul>{items}</ul></div>')
    if comparison:
        parts += ["<h2>Internal vs external</h2>", _comparison(comparison)]
    parts += ["<h2>Headline metrics</h2>", _headline(metrics)]
    if boot.get("n_resamples"):
        parts.append(
            f'<p class="muted">Confidence intervals: {escape(str(boot.get("method", "")))}, '
            f"{_fmt(boot.get('n_resamples'))} bootstrap resamples "
            f"(seed {_fmt(boot.get('seed'))}).</p>"
        )
    parts += ["<h2>Per-class metrics</h2>", _per_class(metrics), _confusion_table(metrics)]
    if model_card:
        card = _model_card(model_card)
        if card:
            parts += ["<h2>Model card</h2>", card]
    figs = _figures(plots or {})
    if figs:
        parts += ["<h2>Figures</h2>", figs]
    parts.append('<p class="muted">Generated by cxrkit. This report is self-contained.</p>')
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)


def write_report(
    out_dir: str | Path,
    metrics: Mapping[str, Any],
    plots: Mapping[str, str | Path] | None = None,
    title: str = "cxrkit evaluation",
    model_card: ModelCard | Mapping[str, Any] | None = None,
    comparison: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write ``out_dir/report.html`` (figures embedded as base64 data URIs); return its path."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.html"
    html = render_report(metrics, plots, title, model_card, comparison)
    path.write_text(html, encoding="utf-8")
    return path
