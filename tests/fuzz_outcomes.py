"""Outcome classes of a fuzz case, and their tally.

`ok` (a film that keeps the contract), `clean_error` (an ImageReadError with a one-line
message naming the file), `crash` (any other exception, or a worker that died), `hang`
(no answer before the per-case timeout), `bad_film` (returned, but not 2-D finite float32
in [0, 1] of at least 16 px a side).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from fuzzing import Case

OUTCOMES = ("ok", "clean_error", "crash", "hang", "bad_film")
MIN_SIDE = 16


def film_problem(image: Any) -> str | None:
    """Why `image` breaks the film contract, or None when it keeps it."""
    if not isinstance(image, np.ndarray) or image.ndim != 2:
        return f"shape {getattr(image, 'shape', type(image).__name__)}"
    if image.dtype != np.float32:
        return f"dtype {image.dtype}"
    if min(image.shape) < MIN_SIDE:
        return f"size {image.shape}"
    if not np.isfinite(image).all():
        return "non-finite values"
    if image.min() < 0 or image.max() > 1:
        return f"values in [{image.min()}, {image.max()}]"
    return None


def classify_read(data: bytes, name: str) -> dict[str, str]:
    """Run `read_image_bytes` on one case in this process: {'outcome', 'detail'}."""
    from cxrkit.errors import ImageReadError
    from cxrkit.io import read_image_bytes
    from cxrkit.io.reasons import describe_exception, is_fatal

    try:
        image, _meta = read_image_bytes(data, name)
    except ImageReadError as exc:
        message = str(exc)
        if "\n" in message or not message.startswith(name):
            return {"outcome": "crash", "detail": f"unclean message: {message[:200]!r}"}
        cause = exc.__cause__  # e.g. a PanicException the reader contained
        detail = type(exc).__name__ + (f" <- {type(cause).__name__}" if cause else "")
        return {"outcome": "clean_error", "detail": detail}
    except MemoryError:
        return {"outcome": "clean_error", "detail": "MemoryError"}
    except BaseException as exc:
        if is_fatal(exc):
            raise
        return {"outcome": "crash", "detail": describe_exception(exc)[:200]}
    problem = film_problem(image)
    if problem:
        return {"outcome": "bad_film", "detail": problem}
    return {"outcome": "ok", "detail": ""}


@dataclass
class Tally:
    """Outcome counts, plus counts per (outcome, detail) and a few examples of each failure."""

    counts: Counter = field(default_factory=Counter)
    details: Counter = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    by_case: dict[int, str] = field(default_factory=dict, repr=False)

    def add(self, case: Case, outcome: str, detail: str) -> None:
        """Count one case's outcome."""
        self.by_case[case.index] = f"{outcome}: {detail}"
        self.counts[outcome] += 1
        self.details[f"{outcome}: {detail}"] += 1
        if outcome not in ("ok", "clean_error"):
            found = self.examples.setdefault(outcome, [])
            if len(found) < 10:
                found.append(f"case {case.index} ({case.seed}; {case.mutation}): {detail}")

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly: the five outcome counts, the total, top details and examples."""
        return {
            "cases": sum(self.counts.values()),
            **{name: self.counts.get(name, 0) for name in OUTCOMES},
            "top_details": dict(self.details.most_common(25)),
            "examples": self.examples,
        }
