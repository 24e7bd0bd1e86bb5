"""Deprecated path, kept for one release: use `cxrkit.evaluate.drift`."""

from cxrkit.evaluate.drift import (
    DRIFT_HTML,
    DRIFT_JSON,
    DRIFT_PNG,
    drift_summary,
    write_drift_report,
)

__all__ = [
    "DRIFT_HTML",
    "DRIFT_JSON",
    "DRIFT_PNG",
    "drift_summary",
    "write_drift_report",
]
