"""Optional per-film extras of an answer: screening (polarity, view, not-a-chest-film) and CAM.

Both come from the `Classifier` (`assess` / `explain`). When one cannot be imported or
loaded, the API answers `null` for it and says why in `unavailable`.
"""

from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from cxrkit.classifier import Classifier
    from cxrkit.classifier.screen import Screening

log = logging.getLogger("cxrkit.serve")
_DIRS = re.compile(r"(?:[A-Za-z]:)?(?:[/\\][^/\\\s:()'\"]+)+[/\\]")


def public_reason(text: str) -> str:
    """A reason fit for API clients: folders of server paths removed, file names kept."""
    return _DIRS.sub("", text)


class Extras:
    """What the optional modules can add to an answer; each degrades to None plus a reason."""

    def __init__(self) -> None:
        from cxrkit.classifier.screen import screen_model

        reason = screen_model()[1]
        self.screen_reason = None if reason is None else public_reason(reason)
        self.cam_reason = _explain_missing()

    def status(self) -> dict[str, str | None]:
        """Per feature: None when available, else why not (for /v1/model and /healthz)."""
        return {
            "polarity": self.screen_reason,
            "not_cxr": self.screen_reason,
            "cam": self.cam_reason,
        }

    def screening(self, screening: Screening) -> dict[str, Any]:
        """The answer's polarity, not_cxr, view, p_lateral, OOD and warnings fields, plus
        `unavailable` for what the screening could not say."""
        out: dict[str, Any] = {
            "polarity": None,
            "not_cxr": None,
            "view": screening.view,
            "p_lateral": screening.p_lateral,
            "out_of_distribution": screening.out_of_distribution,
            "ood_score": screening.ood_score,
            "warnings": list(screening.warnings),
            "unavailable": {},
        }
        if screening.error is not None:
            reason = public_reason(screening.error)
            out["unavailable"] = {"polarity": reason, "not_cxr": reason}
            return out
        out["polarity"] = {
            "label": screening.polarity,
            "probability": screening.p_polarity,
            "inverted": screening.inverted,
        }
        out["not_cxr"] = {
            "flag": screening.not_cxr,
            "probability": screening.p_not_cxr,
            "reason": screening.reason,
        }
        return out

    def cam(
        self, classifier: Classifier, image: np.ndarray
    ) -> tuple[np.ndarray | None, dict[str, Any] | str]:
        """(heat map at the film's size, info) from `Classifier.explain`, or (None, reason)."""
        if self.cam_reason:
            return None, self.cam_reason
        if classifier.net is None:
            return None, "CAM needs the torch model file (.safetensors); this server has ONNX only"
        try:
            heat, info = classifier.explain(image, screen=False)  # the server screens once
        except Exception as exc:  # e.g. pytorch-grad-cam missing or a layer it cannot hook
            log.warning("CAM failed: %s", exc)
            return None, public_reason(f"CAM failed ({type(exc).__name__}: {exc})")
        return heat, info


def _explain_missing() -> str | None:
    try:
        from cxrkit.explain import explain_film  # noqa: F401
    except ImportError as exc:
        return f"CAM module not installed ({exc})"
    return None
