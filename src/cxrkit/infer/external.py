"""Score a saved model on external sets and put them beside its internal figures."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from cxrkit.data.identity import dataset_name
from cxrkit.evaluate.pipeline import FILES
from cxrkit.evaluate.report import write_report
from cxrkit.evaluate.transfer import comparison_rows, headline, transfer_warnings
from cxrkit.io.atomic import atomic_write_text
from cxrkit.models.model_file import read_card

TRANSFER_FILE = "transfer.json"


def score_external(
    model_path: str | Path,
    shown: tuple[str, Mapping[str, Any]],
    external: Sequence[str | Path],
    out_dir: str | Path,
    *,
    title: str,
    reference: tuple[str, Mapping[str, Any]] | None = None,
    **evaluate_kw: Any,
) -> list[dict[str, Any]]:
    """Evaluate `model_path` on each external set into `out_dir/external/NAME/`, then rewrite
    `out_dir/report.html` with every set side by side, and write `out_dir/transfer.json`.

    `shown` is (name, metrics) of the set already scored in `out_dir`; `reference` (e.g. the
    internal test figures kept in the model card) is listed first when given. Every later
    row is compared with the first one and its warnings are added to the report. Returns
    the comparison rows in that order.
    """
    from cxrkit.infer.evaluate_model import evaluate_model

    out = Path(out_dir)
    sets: list[tuple[str, Mapping[str, Any]]] = [reference] if reference else []
    sets.append(shown)
    used = {name for name, _ in sets}
    for data in external:
        name = _unique(dataset_name(data), used)
        metrics = evaluate_model(model_path, data, out / "external" / name, **evaluate_kw)
        sets.append((name, metrics))
    rows = comparison_rows(sets)
    base_name, base = sets[0]
    warnings: list[str] = []
    for row, (name, m) in zip(rows[1:], sets[1:], strict=True):
        row["warnings"] = transfer_warnings(base, m, name, base_name)
        warnings += row["warnings"]
    atomic_write_text(out / TRANSFER_FILE, json.dumps(rows, indent=2, allow_nan=False) + "\n")
    figures = {k: out / f for k, f in FILES.items() if k not in ("metrics", "report")}
    figures = {k: p for k, p in figures.items() if p.is_file()}
    metrics = shown[1]
    report_metrics = {**metrics, "warnings": [*metrics.get("warnings", []), *warnings]}
    card = read_card(model_path)
    write_report(out, report_metrics, figures, title=title, model_card=card, comparison=rows)
    return rows


def external_headlines(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """{set name: headline} of the rows after the first (for the model card's metrics)."""
    return {r["set"]: {**headline(r), "warnings": r.get("warnings", [])} for r in rows[1:]}


def _unique(name: str, used: set[str]) -> str:
    candidate, k = name, 2
    while candidate in used:
        candidate, k = f"{name}-{k}", k + 1
    used.add(candidate)
    return candidate
