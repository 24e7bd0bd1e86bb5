"""Not-a-chest-film guard: flag photos, documents, screens, CT slices and fragments early;
tell frontal from lateral films."""

from cxrkit.guard.check import (
    GuardResult,
    check_film,
    check_films,
    guard_result,
    rule_reason,
    screen_fields,
)
from cxrkit.guard.view import film_view, supported_views, view_skip_reason, view_warning

__all__ = [
    "GuardResult",
    "check_film",
    "check_films",
    "film_view",
    "guard_result",
    "rule_reason",
    "screen_fields",
    "supported_views",
    "view_skip_reason",
    "view_warning",
]
