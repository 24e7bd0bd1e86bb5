"""`ModelCard`: the typed, frozen, validated card of every model file cxrkit writes.

A card is stored as one flat JSON object in the model file's metadata (safetensors) or
in an ONNX graph's properties. It is parsed and validated once, when the file is read
(`ModelCard.from_dict(data, source=path)`); older cards are migrated on read
(`migrate`). Classifiers, the lung segmenter and the polarity / screening net are cards
of the same family: the same parts, each filled as far as the model needs.

Parts: `Network` (what to rebuild), `Preprocessing` (how a film becomes the input),
`Decision` (probabilities to labels), `Calibration` (probability maps),
`Screening` (views trained on, out-of-distribution threshold), `Provenance` (training
data and config, sets used for selection, site calibration, adaptation, export).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cxrkit.card.calibration import Calibration, CalibrationError
from cxrkit.card.decision import DEFAULT_THRESHOLD, Decision, DecisionError, expected_thresholds
from cxrkit.errors import ModelFileError

#: The metadata key a model file (safetensors) or ONNX graph stores its card JSON under.
CARD_KEY = "cxrkit_card"
#: The card schema this cxrkit writes; older versions are migrated on read.
FORMAT_VERSION = 2
#: Every version a card has had: 1 (flat, thresholds a list or the polarity dict), 2.
FORMAT_HISTORY = (1, 2)
CLASSIFIER_TASKS = ("binary", "multiclass", "multilabel")
TASKS = (*CLASSIFIER_TASKS, "segmentation", "polarity")
VIEWS = ("frontal", "lateral")


class CardError(ModelFileError):
    """A model card that is not valid: names the file and the field."""


@dataclass(frozen=True)
class Network:
    """What to rebuild: the architecture and its arguments (classifier: a registry name
    and `model_kwargs`; lung U-Net: encoder, decoder channels, ensemble members; polarity
    net: widths)."""

    architecture: str | None = None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    kind: str | None = None
    encoder: str | None = None
    decoder_channels: tuple[int, ...] | None = None
    weights_dtype: str | None = None
    members: tuple[Mapping[str, Any], ...] | None = None
    widths: tuple[int, ...] | None = None
    view_head: bool | None = None


@dataclass(frozen=True)
class Preprocessing:
    """How a film becomes the network input: crop, resize to `size`, grey channel."""

    size: int
    resize_mode: str = "squash"
    crop: str | None = None
    channels: str = "grayscale"
    input_range: tuple[float, float] | None = None
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    normalization: str | None = None
    output: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.size, bool) or not isinstance(self.size, int) or self.size < 1:
            raise ValueError(f"size must be a positive integer, got {self.size!r}")


@dataclass(frozen=True)
class Screening:
    """The views the model was trained on and its out-of-distribution record."""

    views: tuple[str, ...] = ("frontal",)
    views_declared: bool = False
    ood: Mapping[str, Any] | None = None

    @property
    def ood_threshold(self) -> float | None:
        """The feature-distance score above which a film is out of distribution."""
        return None if not self.ood else float(self.ood["threshold"])


@dataclass(frozen=True)
class Provenance:
    """Where the model came from and what was done to it since."""

    training: Mapping[str, Any] = field(default_factory=dict)
    selection_sets: tuple[Mapping[str, Any], ...] = ()
    site_calibration: Mapping[str, Any] | None = None
    adaptation: Mapping[str, Any] | None = None
    training_thresholds: tuple[float, ...] | None = None
    training_prior: Mapping[str, Any] | None = None
    export: Mapping[str, Any] | None = None
    quantization: Mapping[str, Any] | None = None

    @property
    def class_counts(self) -> dict[str, int]:
        """Training films per class, as recorded at training ({} when not recorded)."""
        return {str(k): int(v) for k, v in (self.training.get("class_counts") or {}).items()}


@dataclass(frozen=True)
class ModelCard:
    """A model file's card, typed. Build it with `from_dict`; write it with `to_dict`."""

    task: str
    class_names: tuple[str, ...]
    preprocessing: Preprocessing
    network: Network = field(default_factory=Network)
    decision: Decision | None = None
    calibration: Calibration = field(default_factory=Calibration)
    screening: Screening = field(default_factory=Screening)
    provenance: Provenance = field(default_factory=Provenance)
    label_column: str | None = None
    operating_points: Mapping[str, float] | None = None
    postprocess: Mapping[str, Any] | None = None
    tta_hflip: bool | None = None
    metrics: Mapping[str, Any] | None = None
    name: str | None = None
    version: str | None = None
    format_version: int = FORMAT_VERSION

    # ---- reading -------------------------------------------------------------------------

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "model card") -> ModelCard:
        """Parse, migrate and validate a card's JSON; `CardError` names `source` and the
        field for NaN or out-of-range thresholds, a wrong threshold count, unknown keys."""
        if isinstance(data, ModelCard):
            return data
        if not isinstance(data, Mapping):
            raise CardError(f"{source}: a model card is a JSON object, got {type(data).__name__}")
        try:
            d = migrate(dict(data), source)
        except CardError:
            raise
        except (TypeError, ValueError, AttributeError, KeyError) as exc:  # odd v1 fields
            raise CardError(f"{source}: cannot migrate this card ({exc})") from exc
        unknown = sorted(set(d) - _KNOWN_KEYS)
        if unknown:
            raise CardError(f"{source}: unknown model card field(s) {unknown}")
        _check_types(d, source)
        try:
            return _parse(d, source)
        except CardError:
            raise
        except (
            DecisionError, CalibrationError, ValueError, TypeError, KeyError, AttributeError
        ) as exc:  # a backstop: the type checks above name the field first
            raise CardError(f"{source}: {_field_of(exc)}{exc}") from exc

    # ---- writing -------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The card as the flat JSON object stored in model files (`format_version` 2)."""
        net, pre, scr, prov = self.network, self.preprocessing, self.screening, self.provenance
        out: dict[str, Any] = {
            "task": self.task,
            "class_names": list(self.class_names),
            "architecture": net.architecture,
            "model_kwargs": dict(net.kwargs) if net.kwargs else None,
            "kind": net.kind,
            "encoder": net.encoder,
            "decoder_channels": _list(net.decoder_channels),
            "weights_dtype": net.weights_dtype,
            "members": _list(net.members),
            "widths": _list(net.widths),
            "view_head": net.view_head,
            "label_column": self.label_column,
            "preprocessing": _drop_none(
                {
                    "size": pre.size,
                    "resize_mode": pre.resize_mode,
                    "crop": pre.crop,
                    "channels": pre.channels,
                    "input_range": _list(pre.input_range),
                    "mean": _list(pre.mean),
                    "std": _list(pre.std),
                    "normalization": pre.normalization,
                    "output": pre.output,
                }
            ),
            "thresholds": list(self.decision.thresholds) if self.decision else None,
            "threshold_method": self.decision.method if self.decision else None,
            "operating_points": dict(self.operating_points) if self.operating_points else None,
            "postprocess": self.postprocess,
            "tta_hflip": self.tta_hflip,
            "views": list(scr.views) if scr.views_declared else None,
            "ood": scr.ood,
            "probability_calibration": self.calibration.probability,
            "prior_shift": self.calibration.prior_shift,
            "training": prov.training,
            "selection_sets": (
                [dict(s) for s in prov.selection_sets] if self.is_classifier else None
            ),
            "site_calibration": prov.site_calibration,
            "adaptation": prov.adaptation,
            "training_thresholds": _list(prov.training_thresholds),
            "training_prior": prov.training_prior,
            "export": prov.export,
            "quantization": prov.quantization,
            "metrics": self.metrics,
            "name": self.name,
            "version": self.version,
            "format_version": FORMAT_VERSION,
        }
        return _drop_none(out)

    def merged(self, **fields: Any) -> ModelCard:
        """A new card with these flat JSON fields set (None removes one), re-validated."""
        d = self.to_dict()
        for key, value in fields.items():
            if value is None:
                d.pop(key, None)
            else:
                d[key] = value
        return ModelCard.from_dict(d, source=f"{self.name or 'model card'} (changed)")

    # ---- what callers ask ------------------------------------------------------------------

    @property
    def is_classifier(self) -> bool:
        """Whether this is a classifier card (binary, multi-class or multi-label)."""
        return self.task in CLASSIFIER_TASKS

    @property
    def thresholds(self) -> tuple[float, ...]:
        """The decision's thresholds (empty for multi-class and polarity cards)."""
        return self.decision.thresholds if self.decision else ()

    @property
    def architecture(self) -> str | None:
        """The network's architecture name."""
        return self.network.architecture

    @property
    def size(self) -> int:
        """The network's input side in pixels."""
        return self.preprocessing.size

    @property
    def views(self) -> tuple[str, ...]:
        """The film views the model was trained on (frontal when the card does not say)."""
        return self.screening.views

    def decide(self, probs: Any) -> list[str]:
        """Labels for probabilities (N, C) by the card's decision rule."""
        return self.require_decision().labels(probs)

    def require_decision(self) -> Decision:
        """The decision rule; `CardError` for a card without one (polarity)."""
        if self.decision is None:
            raise CardError(f"a {self.task} model card has no decision rule")
        return self.decision


# ---- migration -------------------------------------------------------------------------


def migrate(d: dict[str, Any], source: str = "model card") -> dict[str, Any]:
    """Bring a card's JSON to `FORMAT_VERSION`. Version 1 kept the polarity net's named
    thresholds in `thresholds` (a dict; now `operating_points`), the lung model's mask
    threshold in `threshold` (now `thresholds: [t]`), empty threshold lists meaning 0.5,
    and sometimes the trained views under `training.views` only."""
    version = d.get("format_version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version not in FORMAT_HISTORY:
        newer = isinstance(version, int) and version > FORMAT_VERSION
        hint = "; it was written by a newer cxrkit: upgrade cxrkit" if newer else ""
        raise CardError(f"{source}: unknown card format_version {version!r}{hint}")
    if version == 1:
        d = _migrate_v1(d)
    d["format_version"] = FORMAT_VERSION
    return d


def _migrate_v1(d: dict[str, Any]) -> dict[str, Any]:
    d = dict(d)
    if isinstance(d.get("thresholds"), Mapping):
        d["operating_points"] = dict(d.pop("thresholds"))
    if "threshold" in d:
        d["thresholds"] = [d.pop("threshold")]
    if d.get("task") == "segmentation" and "postprocess" in d and d["postprocess"] is None:
        d["postprocess"] = {}  # v1: null meant "no clean-up", as {} does now
    task, names = d.get("task"), d.get("class_names") or []
    if task in ("binary", "multilabel", "segmentation") and not d.get("thresholds"):
        d["thresholds"] = [DEFAULT_THRESHOLD] * expected_thresholds(task, len(names))
    if task == "multiclass":
        d.pop("thresholds", None)
    training = d.get("training")
    if "views" not in d and isinstance(training, Mapping) and training.get("views"):
        d["views"] = list(training["views"])
    return d


# ---- parsing ---------------------------------------------------------------------------

_KNOWN_KEYS = frozenset(
    {
        "task", "class_names", "architecture", "model_kwargs", "kind", "encoder",
        "decoder_channels", "weights_dtype", "members", "widths", "view_head",
        "label_column", "preprocessing", "thresholds", "threshold_method",
        "operating_points", "postprocess", "tta_hflip", "views", "ood",
        "probability_calibration", "prior_shift", "training", "selection_sets",
        "site_calibration", "adaptation", "training_thresholds", "training_prior",
        "export", "quantization", "metrics", "name", "version", "format_version",
    }
)  # fmt: skip
_PREPROCESSING_KEYS = {f.name for f in dataclasses.fields(Preprocessing)}
#: Fields that are JSON objects (or absent / null).
_OBJECT_FIELDS = (
    "model_kwargs", "preprocessing", "postprocess", "ood", "probability_calibration",
    "prior_shift", "training", "site_calibration", "adaptation", "training_prior", "export",
    "quantization", "metrics", "operating_points",
)  # fmt: skip
#: Fields that are text (or absent / null).
_TEXT_FIELDS = (
    "architecture", "kind", "encoder", "weights_dtype", "label_column", "threshold_method",
    "name", "version",
)  # fmt: skip
#: Fields that are lists (or absent / null), and what each item must be.
_LIST_FIELDS: dict[str, type | tuple[type, ...]] = {
    "class_names": str, "views": str, "thresholds": (int, float), "decoder_channels": int,
    "widths": int, "members": Mapping, "selection_sets": Mapping,
    "training_thresholds": (int, float),
}  # fmt: skip
RESIZE_MODES = ("squash", "pad", "crop")


def _check_types(d: Mapping[str, Any], source: str) -> None:
    """Each known field has its JSON type: objects, text, lists of the right items, flags;
    preprocessing's numbers are finite. A `CardError` names the field otherwise."""

    def bad(field: str, want: str) -> CardError:
        return CardError(f"{source}: field {field!r} must be {want}, got {d.get(field)!r}"[:300])

    for key in _OBJECT_FIELDS:
        if d.get(key) is not None and not isinstance(d[key], Mapping):
            raise bad(key, "a JSON object")
    for key in _TEXT_FIELDS:
        if d.get(key) is not None and not isinstance(d[key], str):
            raise bad(key, "text")
    for key in ("tta_hflip", "view_head"):
        if d.get(key) is not None and not isinstance(d[key], bool):
            raise bad(key, "true or false")
    for key, item in _LIST_FIELDS.items():
        value = d.get(key)
        if value is None:
            continue
        if not isinstance(value, list) or not all(
            isinstance(v, item) and not isinstance(v, bool) for v in value
        ):
            raise bad(key, "a list")
    pre = d.get("preprocessing") or {}
    for key in ("resize_mode", "channels", "crop", "normalization", "output"):
        nullable = key == "crop"  # no crop: the whole film
        if key in pre and not isinstance(pre[key], str) and not (nullable and pre[key] is None):
            raise CardError(f"{source}: field 'preprocessing.{key}' must be text")
    if "resize_mode" in pre and pre["resize_mode"] not in RESIZE_MODES:
        raise CardError(
            f"{source}: field 'preprocessing.resize_mode' must be one of {RESIZE_MODES}"
        )
    for key in ("input_range", "mean", "std"):
        values = pre.get(key)
        if values is not None and (
            not isinstance(values, list) or not values or not all(_finite(v) for v in values)
        ):
            raise CardError(f"{source}: field 'preprocessing.{key}' must be finite numbers")


def _parse(d: dict[str, Any], source: str) -> ModelCard:
    task = d.get("task")
    if task not in TASKS:
        raise CardError(f"{source}: field 'task' must be one of {TASKS}, got {task!r}")
    names = d.get("class_names")
    if not isinstance(names, Sequence) or isinstance(names, str) or not names:
        raise CardError(f"{source}: field 'class_names' must be a non-empty list, got {names!r}")
    names = tuple(str(c) for c in names)
    pre = d.get("preprocessing")
    if not isinstance(pre, Mapping) or "size" not in pre:
        raise CardError(f"{source}: field 'preprocessing' needs at least a 'size'")
    unknown = sorted(set(pre) - _PREPROCESSING_KEYS)
    if unknown:
        raise CardError(f"{source}: unknown field(s) {unknown} in 'preprocessing'")
    try:
        preprocessing = Preprocessing(
            **{
                **pre,
                "size": pre["size"],
                "input_range": _tuple(pre.get("input_range"), float),
                "mean": _tuple(pre.get("mean"), float),
                "std": _tuple(pre.get("std"), float),
            }
        )
    except ValueError as exc:
        raise CardError(f"{source}: field 'preprocessing.size': {exc}") from exc
    decision = None
    if task != "polarity":
        thresholds = d.get("thresholds", [])
        if not isinstance(thresholds, Sequence) or isinstance(thresholds, str):
            raise CardError(f"{source}: field 'thresholds' must be a list, got {thresholds!r}")
        try:
            decision = Decision(task, names, tuple(thresholds), d.get("threshold_method"))
        except (DecisionError, TypeError, ValueError) as exc:
            raise CardError(f"{source}: field 'thresholds': {exc}") from exc
    elif d.get("thresholds"):
        raise CardError(f"{source}: field 'thresholds': a polarity card uses 'operating_points'")
    points = d.get("operating_points")
    if points is not None:
        bad = {k: v for k, v in points.items() if not _unit(v)}
        if bad:
            raise CardError(f"{source}: field 'operating_points' must be in [0, 1], got {bad}")
    calibration = Calibration(d.get("probability_calibration"), d.get("prior_shift"))
    if task in CLASSIFIER_TASKS:
        try:
            calibration.check(task, len(names))
        except CalibrationError as exc:  # its message names the field
            raise CardError(f"{source}: {exc}") from exc
    declared = d.get("views")
    views = tuple(str(v) for v in (declared or ("frontal",)))
    bad_views = [v for v in views if v not in VIEWS]
    if bad_views:
        raise CardError(f"{source}: field 'views' must be among {VIEWS}, got {bad_views}")
    ood = d.get("ood")
    if ood and not _finite(ood.get("threshold")):
        raise CardError(f"{source}: field 'ood.threshold' must be a finite number")
    return ModelCard(
        task=task,
        class_names=names,
        preprocessing=preprocessing,
        network=Network(
            architecture=d.get("architecture"),
            kwargs=dict(d.get("model_kwargs") or {}),
            kind=d.get("kind"),
            encoder=d.get("encoder"),
            decoder_channels=_tuple(d.get("decoder_channels"), int),
            weights_dtype=d.get("weights_dtype"),
            members=_tuple(d.get("members"), dict),
            widths=_tuple(d.get("widths"), int),
            view_head=d.get("view_head"),
        ),
        decision=decision,
        calibration=calibration,
        screening=Screening(views, declared is not None, ood or None),
        provenance=Provenance(
            training=dict(d.get("training") or {}),
            selection_sets=tuple(dict(s) for s in d.get("selection_sets") or ()),
            site_calibration=d.get("site_calibration"),
            adaptation=d.get("adaptation"),
            training_thresholds=_tuple(d.get("training_thresholds"), float),
            training_prior=d.get("training_prior"),
            export=d.get("export"),
            quantization=d.get("quantization"),
        ),
        label_column=d.get("label_column"),
        operating_points={k: float(v) for k, v in points.items()} if points else None,
        postprocess=d.get("postprocess"),
        tta_hflip=d.get("tta_hflip"),
        metrics=d.get("metrics"),
        name=d.get("name"),
        version=d.get("version"),
    )


def _unit(v: Any) -> bool:
    return _finite(v) and 0.0 <= float(v) <= 1.0


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _tuple(values: Any, kind: type) -> tuple | None:
    return None if values is None else tuple(kind(v) for v in values)


def _list(values: Any) -> list | None:
    return None if values is None else [dict(v) if isinstance(v, Mapping) else v for v in values]


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None}


def _field_of(exc: BaseException) -> str:
    return f"field {exc.args[0]!r}: " if isinstance(exc, KeyError) and exc.args else ""
