"""Evaluation: metrics with bootstrap CIs, operating thresholds, figures and an offline report."""

from cxrkit.evaluate.metrics import compute_metrics
from cxrkit.evaluate.pipeline import evaluate_predictions
from cxrkit.evaluate.report import write_report
from cxrkit.evaluate.thresholds import choose_threshold, choose_thresholds
from cxrkit.evaluate.validation import EvaluationError

__all__ = [
    "EvaluationError",
    "choose_threshold",
    "choose_thresholds",
    "compute_metrics",
    "evaluate_predictions",
    "write_report",
]
