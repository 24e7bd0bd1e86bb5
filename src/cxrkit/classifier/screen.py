"""One screening path: polarity, view, not-a-chest-film and their warnings, per film.

The shipped polarity / view / not-a-chest-film network (`cxrkit.polarity`) and the guard's
rules (`cxrkit.guard`) judge each film; `screen_films` turns that into one `Screening` per
film. `Classifier.screen` (one film), `Classifier.predict` (batched: rows of `cxr predict`)
and `cxr serve` all come here. A film the screening model calls lateral gets the lateral
warning when the classifier's card does not list lateral among its training views.
"""

from __future__ import annotations

import contextlib
import functools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cxrkit.card import ModelCard
from cxrkit.models.outputs import OOD_WARNING

log = logging.getLogger("cxrkit")

LATERAL_WARNING = "lateral view: this model was trained on frontal films"
NOT_SCREENED = "film not screened (polarity, view and not-a-chest-film unchecked)"
#: Views a classifier is taken to be trained on when its card does not say.
DEFAULT_VIEWS = ("frontal",)


def training_views(card: ModelCard) -> tuple[str, ...]:
    """The film views a classifier was trained on: the card's `views`, else frontal only."""
    return card.views


@dataclass
class Screening:
    """The screening of one film; `error` says why there is none (model missing, failure)."""

    not_cxr: bool | None = None
    p_not_cxr: float | None = None
    reason: str = ""  # why it is no chest film ('' when it is one)
    polarity: str | None = None
    p_polarity: float | None = None
    inverted: bool | None = None
    view: str | None = None
    p_lateral: float | None = None
    out_of_distribution: bool | None = None  # the classifier's own feature reference
    ood_score: float | None = None
    warnings: list[str] = field(default_factory=list)
    error: str | None = None

    def set_ood(self, fields: dict[str, Any]) -> Screening:
        """Take `ood_fields` of the classifier; a flagged film gets the OOD warning."""
        self.out_of_distribution, self.ood_score = (
            fields["out_of_distribution"],
            fields["ood_score"],
        )
        if self.out_of_distribution:
            self.warnings.append(OOD_WARNING)
        return self

    def fields(self) -> dict[str, Any]:
        """The columns `cxr predict` writes: out_of_distribution, ood_score, not_cxr,
        polarity, view, p_lateral, warning. A screening that could not run says so in
        `warning`: empty columns must not read as "checked, nothing found"."""
        warnings = list(self.warnings)
        if self.error:
            warnings.append(f"{NOT_SCREENED}: {self.error}")
        return {
            "out_of_distribution": self.out_of_distribution,
            "ood_score": self.ood_score,
            "not_cxr": self.not_cxr,
            "polarity": self.polarity,
            "view": self.view,
            "p_lateral": self.p_lateral,
            "warning": "; ".join(warnings),
        }


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run torch on one intra-op thread inside the block (restored after).

    The screening net is tiny: on a busy CPU each parallel region of several threads waits
    for all of them to be scheduled, which cost ~80 ms per film at batch 1 on 2 shared
    cores against 0.3 ms on one thread (issue 16). Not thread-safe with other torch
    users changing the count; `predict` and the server's model thread call it alone.
    """
    import torch

    n = torch.get_num_threads()
    if n == 1:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


@functools.lru_cache(maxsize=2)
def screen_model(graph: bool = False) -> tuple[Any, str | None]:
    """(the shipped screening model, None) or (None, why it cannot be used). `graph`: its
    ONNX graph on onnxruntime (`ScreenGraph`, no torch), for the graph runtimes."""
    try:
        if graph:
            from cxrkit.classifier.screen_graph import load_screen_graph

            return load_screen_graph(), None
        from cxrkit.polarity.model import load_polarity_model

        return load_polarity_model(), None
    except ImportError as exc:
        reason = f"polarity / not-a-CXR module not installed ({exc})"
    except Exception as exc:  # ModelFileError when the shipped weights are absent or old
        reason = f"polarity / not-a-CXR model not loadable ({exc})"
    log.warning("film screening off: %s", reason)
    return None, reason


def screen_films(
    films: np.ndarray,
    rules: list[str],
    views: tuple[str, ...] = DEFAULT_VIEWS,
    *,
    graph: bool = False,
) -> list[Screening]:
    """Screen films already squashed to the screening model's input size (N, S, S).

    `rules` are `cxrkit.guard.rule_reason` of each full-size film ('' when none fired);
    `views` are the classifier's training views (`training_views(card)`); `graph` screens
    with the ONNX graph of the screening net (`screen_model(graph=True)`).
    """
    model, reason = screen_model(graph)
    if model is None:
        return [Screening(error=reason) for _ in rules]
    from cxrkit.errors import ModelOutputError
    from cxrkit.guard import guard_result
    from cxrkit.polarity.predict import polarity_row

    with contextlib.nullcontext() if graph else one_torch_thread():
        probs = model.probs(films) if len(rules) else []
    out = []
    for p, rule in zip(probs, rules, strict=True):
        try:
            guard, row = guard_result(p, rule, model), polarity_row(p, model)
        except ModelOutputError as exc:  # no verdict from a broken output; the rule stands
            flagged = {"not_cxr": True, "reason": rule, "warnings": [rule]} if rule else {}
            out.append(Screening(error=str(exc), **flagged))
            continue
        view, p_lateral = row.get("view"), row.get("p_lateral")
        lateral = view == "lateral" and "lateral" not in views
        warnings = [guard.reason] if not guard.is_cxr else []
        if lateral and not rule:  # the model's view, not a photo or document
            warnings = [LATERAL_WARNING]
        if guard.is_cxr and row["polarity"] == "negative":
            warnings.append(
                f"film looks inverted (negative, p={row['probability']:.2f}): check the DICOM "
                "photometric interpretation or run `cxr polarity fix`"
            )
        out.append(
            Screening(
                not_cxr=not guard.is_cxr,
                p_not_cxr=round(float(row["not_cxr"]), 6),
                reason=guard.reason,
                polarity=row["polarity"],
                p_polarity=round(float(row["probability"]), 6),
                inverted=bool(row["inverted"]),
                view=view,
                p_lateral=None if p_lateral is None else round(float(p_lateral), 6),
                warnings=warnings,
            )
        )
    return out


def screen_image(
    image: np.ndarray, views: tuple[str, ...] = DEFAULT_VIEWS, *, graph: bool = False
) -> Screening:
    """Screen one full-size film (float (H, W) in [0, 1]); failures become `error`."""
    try:
        prepared = screen_input(image, graph=graph)
        if prepared is None:
            return Screening(error=screen_model(graph)[1])
        return screen_films(prepared[0][None], [prepared[1]], views, graph=graph)[0]
    except Exception as exc:  # an optional check must not fail the prediction
        log.warning("screening failed: %s", exc)
        return Screening(error=f"screening failed ({type(exc).__name__}: {exc})")


def screen_input(image: np.ndarray, *, graph: bool = False) -> tuple[np.ndarray, str] | None:
    """(the film squashed for the screening model, its rule verdict); None without a model."""
    model, _ = screen_model(graph)
    if model is None:
        return None
    from cxrkit.guard import rule_reason

    return model.prepare(image), rule_reason(image)
