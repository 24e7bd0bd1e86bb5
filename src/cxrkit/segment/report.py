"""Console views of a lung evaluation: per set / view table, annotator agreement lines."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def groups_table(name: str, summary: dict[str, Any]) -> Table:
    """Rows: overall, each set, each view group, each set and view, each raw view name."""
    table = Table(title=f"{name}: Dice / IoU / HD95 (px) per set and view")
    for col in ("group", "n", "Dice mean", "Dice worst", "IoU mean", "HD95 mean", "HD95 worst"):
        left = col == "group"
        table.add_column(col, justify="left" if left else "right", no_wrap=left)

    def add(label: str, s: dict[str, Any]) -> None:
        table.add_row(
            label,
            str(s["n"]),
            f"{s['dice']['mean']:.4f}",
            f"{s['dice']['min']:.4f}",
            f"{s['iou']['mean']:.4f}",
            f"{s['hd95']['mean']:.1f}",
            f"{s['hd95']['max']:.1f}",
        )

    add("all", summary)
    for kind in ("set", "view", "set_view", "view_name"):
        groups = summary.get("groups", {}).get(kind, {})
        if groups:
            table.add_section()
        for key, s in groups.items():
            add(f"view {key}" if kind == "view_name" else key, s)
    return table


def no_reference_lines(summary: dict[str, Any]) -> list[str]:
    """Films left unscored because their reference mask is empty, with the predicted area."""
    unscored = summary.get("no_reference") or []
    if not unscored:
        return []
    views = sorted({r.get("view") or "?" for r in unscored})
    lines = [f"{len(unscored)} film(s) not scored: empty reference mask (views {', '.join(views)})"]
    for r in unscored:
        lines.append(f"  {r['set']}/{r['path']}: model's lung fraction {r['area_pred']:.3f}")
    return lines


def annotator_lines(summary: dict[str, Any]) -> list[str]:
    """The inter-annotator Dice on doubly masked films beside the model's Dice to each set."""
    agree = summary.get("annotators") or {}
    if not agree.get("n"):
        return []
    inter = agree["inter_annotator"]
    lines = [
        f"films masked by two annotators: {agree['n']}  inter-annotator Dice "
        f"{inter['mean']:.4f} (median {inter['median']:.4f}, worst {inter['min']:.4f})"
    ]
    for set_name, s in agree["model"].items():
        lines.append(
            f"  model vs {set_name} on those films: Dice {s['mean']:.4f} "
            f"(median {s['median']:.4f}, worst {s['min']:.4f})"
        )
    for skipped in agree.get("not_comparable", []):
        lines.append(f"  not comparable (different crops): {skipped}")
    return lines
