"""Confidence intervals for proportions (accuracy, sensitivity, specificity, rates)."""

from __future__ import annotations

import math

from scipy.stats import norm


def wilson_interval(successes: int, total: int, level: float = 0.95) -> list[float] | None:
    """Wilson score interval of successes / total; None when total is 0.

    Preferred over the normal (Wald) interval for the small sets a site validates on: it
    stays inside [0, 1] and keeps its coverage near 0 and 1 (Brown, Cai & DasGupta 2001).
    """
    if total <= 0:
        return None
    z = float(norm.ppf(0.5 + level / 2))
    p = successes / total
    denom = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denom
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denom
    return [max(0.0, centre - half), min(1.0, centre + half)]
