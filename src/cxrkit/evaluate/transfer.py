"""Internal vs external figures side by side, and the warnings a site shift deserves."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: Headline keys kept per set (in the model card, the report and the benchmark tables).
HEADLINE_KEYS = (
    "n",
    "accuracy",
    "accuracy_ci",
    "balanced_accuracy",
    "auc",
    "auc_ci",
    "sensitivity",
    "sensitivity_ci",
    "specificity",
    "specificity_ci",
    "threshold",
    "ece",
    "predicted_positive_rate",
    "prevalence",
    "used_for_selection",
)

#: A drop beyond these (external vs internal) earns a warning in the report.
AUC_DROP_WARN = 0.02
ACCURACY_DROP_WARN = 0.05
RATE_GAP_WARN = 0.10


def headline(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline subset of a metrics dict (keys absent for the task are left out)."""
    return {k: metrics[k] for k in HEADLINE_KEYS if k in metrics}


def transfer_warnings(
    internal: Mapping[str, Any] | None,
    external: Mapping[str, Any],
    name: str,
    internal_name: str = "the internal test split",
) -> list[str]:
    """Plain-language warnings when `external` falls short of `internal`, or its operating
    point no longer fits (predicted-positive rate far from the true rate)."""
    out: list[str] = []
    auc_in, auc_ex = (internal or {}).get("auc"), external.get("auc")
    if auc_in is not None and auc_ex is not None and auc_in - auc_ex > AUC_DROP_WARN:
        out.append(f"{name}: AUC {auc_ex:.3f} vs {auc_in:.3f} on {internal_name}")
    acc_in, acc_ex = (internal or {}).get("accuracy"), external.get("accuracy")
    if acc_in is not None and acc_ex is not None and acc_in - acc_ex > ACCURACY_DROP_WARN:
        out.append(
            f"{name}: accuracy {acc_ex:.3f} vs {acc_in:.3f} on {internal_name}; "
            "consider `cxr calibrate` on a labelled sample of this site"
        )
    rate, prevalence = external.get("predicted_positive_rate"), external.get("prevalence")
    if rate is not None and prevalence is not None and abs(rate - prevalence) > RATE_GAP_WARN:
        out.append(
            f"{name}: the model calls {rate:.0%} of films positive, the true rate is "
            f"{prevalence:.0%}: the operating threshold does not fit this site"
        )
    return out


def comparison_rows(sets: Sequence[tuple[str, Mapping[str, Any]]]) -> list[dict[str, Any]]:
    """One headline row per (set name, metrics), in the given order."""
    return [{"set": name, **headline(m)} for name, m in sets]
