"""`check_film`: is this input a chest film at all, and which view? Rules, then the model."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cxrkit.guard.view import view_warning
from cxrkit.polarity.model import (
    PolarityModel,
    load_polarity_model,
    not_cxr_probability,
    require_valid_row,
    view_of,
)

MIN_SIDE = 32  # px; smaller inputs cannot be judged (nor classified)
MAX_ASPECT = 2.5  # chest films are roughly square; 3:1 strips are not films
MIN_STD = 0.01  # a film has contrast; a blank page or empty frame does not


@dataclass(frozen=True)
class GuardResult:
    """`is_cxr`: looks like a chest film (frontal or lateral); `score`: the model's
    probability of that (0 when a rule fired first); `reason`: why not ('' when it is one);
    `view`: 'frontal' or 'lateral' ('' when a rule fired: not judged); `p_lateral`: the
    model's p(lateral view) (0 when a rule fired)."""

    is_cxr: bool
    score: float
    reason: str = ""
    view: str = ""
    p_lateral: float = 0.0


def rule_reason(image: np.ndarray) -> str:
    """Why an image cannot be a chest film by size, shape or contrast; '' when none applies."""
    arr = np.asarray(image, dtype=np.float32)
    if arr.ndim != 2 or min(arr.shape) < MIN_SIDE:
        return f"too small for a chest film ({'x'.join(str(v) for v in arr.shape)} px)"
    h, w = arr.shape
    if max(h, w) / min(h, w) > MAX_ASPECT:
        return f"not film-shaped (aspect ratio {max(h, w) / min(h, w):.1f}:1)"
    step = max(1, max(h, w) // 256)
    if float(arr[::step, ::step].std()) < MIN_STD:
        return "blank image (no contrast)"
    return ""


def guard_result(probs: np.ndarray, rule: str, model: PolarityModel) -> GuardResult:
    """Combine a rule verdict (from `rule_reason`) and the model's (4,) probabilities;
    probabilities that are not finite in [0, 1] raise `ModelOutputError`."""
    if rule:
        return GuardResult(False, 0.0, rule)
    probs = require_valid_row(probs)
    p_not = not_cxr_probability(probs)
    view, p_lat = view_of(probs, model)
    score, p_lat = round(1.0 - p_not, 6), round(p_lat, 6)
    if p_not >= model.not_cxr_threshold:
        if view == "lateral":  # the view head knows laterals better than the class head
            reason = (
                f"not recognised as a chest film (p_not_cxr={p_not:.2f}), though it looks "
                f"like a lateral view (p_lateral={p_lat:.2f}): check the film"
            )
        else:
            reason = (
                f"does not look like a chest film (p_not_cxr={p_not:.2f}): a photo, "
                "document, screenshot, CT slice or film fragment?"
            )
        return GuardResult(False, score, reason, view, p_lat)
    return GuardResult(True, score, "", view, p_lat)


def as_unit_film(image: np.ndarray) -> np.ndarray:
    """Float32 (H, W) in [0, 1]: integer arrays scaled by their type's maximum, RGB(A) averaged."""
    arr = np.asarray(image)
    scale = float(np.iinfo(arr.dtype).max) if arr.dtype.kind in "ui" else 1.0
    arr = arr.astype(np.float32) / np.float32(scale)
    if arr.ndim == 3 and arr.shape[-1] in (3, 4):
        arr = arr[..., :3].mean(axis=-1)
    return np.clip(arr, 0.0, 1.0)


def check_film(image: np.ndarray, model: PolarityModel | None = None) -> GuardResult:
    """Judge one image: float (H, W) in [0, 1] as `read_image` gives it, or uint8/uint16/RGB."""
    return check_films([image], model)[0]


def check_films(images: list[np.ndarray], model: PolarityModel | None = None) -> list[GuardResult]:
    """Judge several images in one batch."""
    model = model or load_polarity_model()
    images = [as_unit_film(im) for im in images]
    rules = [rule_reason(im) for im in images]
    films = [
        model.prepare(im) if not r else np.zeros((model.input_size,) * 2, np.float32)
        for im, r in zip(images, rules, strict=True)
    ]
    probs = model.probs(np.stack(films)) if films else []
    return [guard_result(p, r, model) for p, r in zip(probs, rules, strict=True)]


def screen_fields(
    probs: np.ndarray,
    rule: str,
    model: PolarityModel,
    trained_views: Sequence[str] | None = None,
) -> dict[str, object]:
    """Columns `predict` adds per film: `not_cxr` (bool), `polarity`, `view`, `p_lateral`
    and a `warning` text. With `trained_views` (the classifier's), a chest film of another
    view gets `view_warning` in `warning` (the classifier's output is kept)."""
    from cxrkit.polarity.model import polarity_of

    guard = guard_result(probs, rule, model)
    polarity, p_pol = polarity_of(probs)
    warnings = [guard.reason] if not guard.is_cxr else []
    if guard.is_cxr and trained_views is not None:
        warnings.append(view_warning(guard.view, trained_views))
    if guard.is_cxr and polarity == "negative":
        warnings.append(
            f"film looks inverted (negative, p={p_pol:.2f}): check the DICOM photometric "
            "interpretation or run `cxr polarity fix`"
        )
    return {
        "not_cxr": not guard.is_cxr,
        "polarity": polarity,
        "view": guard.view,
        "p_lateral": guard.p_lateral,
        "warning": "; ".join(w for w in warnings if w),
    }
