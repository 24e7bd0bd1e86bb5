"""Optional per-film extras: polarity, the not-a-chest-film flag and CAM, when installed.

These come from `cxrkit.guard` / `cxrkit.polarity` and `cxrkit.explain`. When one cannot
be imported or loaded, the API answers `null` for it and says why in `unavailable`.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

log = logging.getLogger("cxrkit.serve")
_DIRS = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^/\\\s:()'\"]+)+[/\\]")


def public_reason(text: str) -> str:
    """A reason fit for API clients: folders of server paths removed, file names kept."""
    return _DIRS.sub("", text)


@dataclass
class Screening:
    """Polarity and not-a-chest-film verdicts of one film, plus warnings for people."""

    polarity: dict[str, Any] | None = None
    not_cxr: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    unavailable: dict[str, str] = field(default_factory=dict)


class Extras:
    """Loads the optional modules once; each method degrades to None plus a reason."""

    def __init__(self) -> None:
        self.screen_model, self.screen_reason = _load_screen_model()
        self.cam_reason = _explain_missing()

    def status(self) -> dict[str, str | None]:
        """Per feature: None when available, else why not (for /v1/model and /healthz)."""
        return {
            "polarity": self.screen_reason,
            "not_cxr": self.screen_reason,
            "cam": self.cam_reason,
        }

    def screen(self, image: np.ndarray) -> Screening:
        """Polarity and not-a-chest-film verdicts of a decoded film (float (H, W) in [0, 1])."""
        if self.screen_model is None:
            reason = self.screen_reason or "unavailable"
            return Screening(unavailable={"polarity": reason, "not_cxr": reason})
        from cxrkit.guard import guard_result, rule_reason, screen_fields
        from cxrkit.polarity.model import not_cxr_probability, polarity_of

        model = self.screen_model
        try:
            rule = rule_reason(image)
            probs = model.probs(model.prepare(image)[None])[0]
        except Exception as exc:  # an optional check must not fail the prediction
            log.warning("screening failed: %s", exc)
            reason = public_reason(f"screening failed ({type(exc).__name__}: {exc})")
            return Screening(unavailable={"polarity": reason, "not_cxr": reason})
        guard = guard_result(probs, rule, model)
        label, p_label = polarity_of(probs)
        fields = screen_fields(probs, rule, model)
        return Screening(
            polarity={
                "label": label,
                "probability": round(float(p_label), 6),
                "inverted": label == "negative" and p_label >= model.fix_threshold,
            },
            not_cxr={
                "flag": not guard.is_cxr,
                "probability": round(not_cxr_probability(probs), 6),
                "reason": guard.reason,
            },
            warnings=[w for w in str(fields.get("warning", "")).split("; ") if w],
        )

    def cam(
        self, model: Any, card: dict[str, Any], image: np.ndarray
    ) -> tuple[np.ndarray | None, dict[str, Any] | str]:
        """(heat map at the film's size, info) from `cxrkit.explain`, or (None, reason)."""
        if self.cam_reason:
            return None, self.cam_reason
        if model is None:
            return None, "CAM needs the torch model file (.safetensors); this server has ONNX only"
        from cxrkit.explain import explain

        try:
            heat, info = explain(model, card, image)
        except Exception as exc:  # e.g. pytorch-grad-cam missing or a layer it cannot hook
            log.warning("CAM failed: %s", exc)
            return None, public_reason(f"CAM failed ({type(exc).__name__}: {exc})")
        return heat, info


def _load_screen_model() -> tuple[Any, str | None]:
    try:
        from cxrkit.guard import guard_result  # noqa: F401
        from cxrkit.polarity.model import load_polarity_model
    except ImportError as exc:
        return None, f"polarity / not-a-CXR module not installed ({exc})"
    try:
        return load_polarity_model(), None
    except Exception as exc:  # ModelFileError when the shipped weights are absent
        return None, public_reason(f"polarity / not-a-CXR model not loadable ({exc})")


def _explain_missing() -> str | None:
    try:
        from cxrkit.explain import explain  # noqa: F401
    except ImportError as exc:
        return f"CAM module not installed ({exc})"
    return None
