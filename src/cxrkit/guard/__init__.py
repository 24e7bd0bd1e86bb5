"""Not-a-chest-film guard: flag photos, documents, screens, CT slices and fragments early."""

from cxrkit.guard.check import (
    GuardResult,
    check_film,
    check_films,
    guard_result,
    rule_reason,
    screen_fields,
)

__all__ = [
    "GuardResult",
    "check_film",
    "check_films",
    "guard_result",
    "rule_reason",
    "screen_fields",
]
