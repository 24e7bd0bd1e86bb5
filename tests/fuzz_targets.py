"""Fuzz targets beyond films: lung-mask PNGs, model-card JSON and a card's decision rule.

Each target has seeds, a seeded case maker and an in-process classifier with the five
outcomes of `fuzz_outcomes` (`bad_film` there means a wrong answer of the target: a mask
that is not a 2-D bool array, a card accepted that is not valid, a label on a broken row).

- `mask`: mutated mask PNGs (binary L, mode 1, RGB, 16-bit, palette) through
  `cxrkit.segment.data.read_mask` (the reader of labelled mask sets): a bool mask or a
  `CxrkitError` with a one-line message; any other exception is a crash.
- `card`: mutated card JSON through `ModelCard.from_dict`: a `CardError` or a card that
  keeps its contract (thresholds finite in [0, 1], one per decided class, `to_dict` reads
  back as the same card); any other exception is a crash.
- `decision`: mutated probability rows (NaN, inf, out of range, wrong length or shape,
  float16/32/64, int, bool) through a three-class card's decision (`Decision.row` and
  `ModelCard.decide`): a label only for a row of 3 finite numbers in [0, 1], else an error.

DICOM SR: cxrkit writes Structured Reports (`dicom_out`) but reads none, so there is no
SR reader to fuzz.
"""

from __future__ import annotations

import copy
import io
import json
import math
import re
from typing import Any

import numpy as np
from PIL import Image

from fuzz_seeds import Seed
from fuzzing import Case, mutate

Rng = np.random.Generator
TARGETS = ("film", "mask", "card", "decision")
NEW_TARGETS = TARGETS[1:]

# --- seeds ----------------------------------------------------------------------------


def _png(im: Image.Image) -> bytes:
    buffer = io.BytesIO()
    im.save(buffer, format="PNG")
    return buffer.getvalue()


def mask_seeds(size: int = 48) -> list[Seed]:
    """Lung-mask PNGs as mask sets hold them: 0/255 L, mode 1, RGB, 16-bit, palette."""
    yy, xx = np.mgrid[:size, :size]
    lungs = ((xx - size * 0.3) ** 2 / 0.04 + (yy - size * 0.5) ** 2 / 0.12 < size**2) | (
        (xx - size * 0.7) ** 2 / 0.04 + (yy - size * 0.5) ** 2 / 0.12 < size**2
    )
    grey = (lungs * 255).astype(np.uint8)
    return [
        Seed("mask_l", "png", _png(Image.fromarray(grey))),
        Seed("mask_1bit", "png", _png(Image.fromarray(grey).convert("1"))),
        Seed("mask_rgb", "png", _png(Image.fromarray(np.stack([grey] * 3, -1)))),
        Seed("mask_16bit", "png", _png(Image.fromarray(lungs.astype(np.uint16) * 65535))),
        Seed("mask_palette", "png", _png(Image.fromarray(grey).convert("P"))),
    ]


_PRE = {
    "size": 64,
    "resize_mode": "squash",
    "channels": "grayscale",
    "input_range": [0.0, 1.0],
    "mean": [0.5],
    "std": [0.25],
    "normalization": "applied inside the network",
}


def _card(task: str, classes: list[str], thresholds: list[float], **extra: Any) -> dict:
    return {
        "architecture": "small_cnn",
        "model_kwargs": {"head_hidden": None, "dropout": 0.0},
        "task": task,
        "class_names": classes,
        "label_column": "label",
        "preprocessing": dict(_PRE),
        "thresholds": thresholds,
        "threshold_method": "youden",
        "training": {"data": "set", "mode": "finetune", "config": {}},
        **extra,
    }


THREE = ["normal", "bacterial", "viral"]
#: Valid card dicts: binary, three-class, multi-label, and a calibrated binary one.
CARDS: list[dict] = [
    _card("binary", ["normal", "pneumonia"], [0.5]),
    _card("multiclass", THREE, []),
    _card("multilabel", ["effusion", "nodule", "cardiomegaly"], [0.3, 0.5, 0.7]),
    _card(
        "binary",
        ["normal", "pneumonia"],
        [0.42],
        probability_calibration={"method": "temperature", "params": {"temperature": 1.5}},
        metrics={"test": {"auc": 0.9, "n": 100}},
    ),
]
#: The cards the decision target decides with: three-class multi-class and multi-label.
DECISION_CARDS = (1, 2)


def card_seeds() -> list[Seed]:
    """The valid cards of `CARDS` as JSON seeds."""
    return [
        Seed(f"card_{i}_{c['task']}", "json", json.dumps(c).encode()) for i, c in enumerate(CARDS)
    ]


def decision_seeds() -> list[Seed]:
    """One seed per decision card (the rows are drawn per case)."""
    return [Seed(f"rows_card{i}_{CARDS[i]['task']}", "json", b"") for i in DECISION_CARDS]


def seeds_for(target: str) -> list[Seed]:
    """The seeds of a new target."""
    return {"mask": mask_seeds, "card": card_seeds, "decision": decision_seeds}[target]()


# --- card mutations -------------------------------------------------------------------

_HOSTILE: list[Any] = [
    float("nan"), float("inf"), float("-inf"), 1e308, -1e308, -1, 0, 1, 2, 0.5, -0.0,
    5e-324, 10**30, -(10**30), "", "x", "NaN", "0.5", None, True, False, [], {}, [float("nan")],
    [0.5], [0.5, 0.5, 0.5, 0.5], ["a", "a"], {"k": 1}, [[0.5]], "binary", "multiclass",
    "segmentation", "polarity", 3.7,
]  # fmt: skip
_KEYS = ["bogus", "thresholds", "task", "class_names", "format_version", "calibration",
         "preprocessing", "size", "ood", "screening", "decision", "method"]  # fmt: skip


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every path to a value inside nested dicts / lists."""
    found = [prefix]
    if isinstance(node, dict):
        for k, v in node.items():
            found += _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            found += _paths(v, prefix + (i,))
    return found


def _get(node: Any, path: tuple) -> Any:
    for part in path:
        node = node[part]
    return node


def mutate_card(rng: Rng, card: dict) -> str:
    """One structure-aware change to `card` in place; returns its description."""
    paths = [p for p in _paths(card) if p]
    path = paths[int(rng.integers(len(paths)))]
    parent, key = _get(card, path[:-1]), path[-1]
    action = ["set", "set", "set", "delete", "add", "grow", "shrink", "retype"][
        int(rng.integers(8))
    ]
    where = "/".join(map(str, path))
    if action == "set":
        value = copy.deepcopy(_HOSTILE[int(rng.integers(len(_HOSTILE)))])
        parent[key] = value
        return f"set {where}={value!r}"[:120]
    if action == "delete":
        del parent[key]
        return f"delete {where}"
    if action == "add" and isinstance(parent, dict):
        name = _KEYS[int(rng.integers(len(_KEYS)))]
        parent[name] = copy.deepcopy(_HOSTILE[int(rng.integers(len(_HOSTILE)))])
        return f"add {where.rsplit('/', 1)[0]}/{name}"
    value = parent[key]
    if action == "grow" and isinstance(value, list):
        value.append(copy.deepcopy(value[-1]) if value else 0.5)
        return f"grow {where}"
    if action == "shrink" and isinstance(value, list) and value:
        value.pop(int(rng.integers(len(value))))
        return f"shrink {where}"
    if isinstance(value, list):
        parent[key] = {str(i): v for i, v in enumerate(value)}
    elif isinstance(value, dict):
        parent[key] = list(value.values())
    else:
        parent[key] = [value]
    return f"retype {where}"


def make_card_case(seeds: list[Seed], index: int, master_seed: int = 0) -> Case:
    """Case `index`: a seed card with 1-3 structure-aware changes, as JSON (NaN allowed)."""
    rng = np.random.default_rng([master_seed, index, 1])
    seed = seeds[int(rng.integers(len(seeds)))]
    card = json.loads(seed.data)
    changes = [mutate_card(rng, card) for _ in range(int(rng.integers(1, 4)))]
    return Case(index, seed.name, "json", " + ".join(changes), json.dumps(card).encode(), "card")


# --- probability-row mutations --------------------------------------------------------

_ODD = [float("nan"), float("inf"), float("-inf"), -1e-7, 1 + 1e-7, 1.0000001, -0.0, 5e-324,
        1e308, -1.0, 2.0, 0.0, 1.0, 0.9999999, 65504.0, 1e-45]  # fmt: skip
_DTYPES = ["float64", "float32", "float16", "int64", "bool"]


def make_decision_case(seeds: list[Seed], index: int, master_seed: int = 0) -> Case:
    """Case `index`: a probability row for a decision card, valid (about a third) or with
    odd values, a wrong length or shape, in one of several dtypes."""
    rng = np.random.default_rng([master_seed, index, 2])
    seed = seeds[int(rng.integers(len(seeds)))]
    card = int(seed.name.split("_")[1].removeprefix("card"))
    n = len(CARDS[card]["class_names"])
    row = rng.dirichlet(np.ones(n)) if CARDS[card]["task"] == "multiclass" else rng.random(n)
    values: list[Any] = row.tolist()
    changes = []
    for _ in range(int(rng.integers(0, 3))):
        action = ["odd", "odd", "odd", "length", "nest", "dtype"][int(rng.integers(6))]
        if action == "odd" and values:
            j = int(rng.integers(len(values)))
            values[j] = _ODD[int(rng.integers(len(_ODD)))]
            changes.append(f"[{j}]={values[j]!r}")
        elif action == "length":
            values = values[:-1] if rng.random() < 0.5 else values + [0.1]
            changes.append(f"length {len(values)}")
        elif action == "nest":
            changes.append("shape (1, n)")
        elif action == "dtype":
            changes.append(f"dtype {_DTYPES[int(rng.integers(len(_DTYPES)))]}")
    dtype = next((c.split()[1] for c in reversed(changes) if c.startswith("dtype")), "float32")
    payload = {"card": card, "values": values, "dtype": dtype, "nest": "shape (1, n)" in changes}
    return Case(
        index, seed.name, "json", " + ".join(changes) or "valid row",
        json.dumps(payload).encode(), "decision",
    )  # fmt: skip


def make_mask_case(seeds: list[Seed], index: int, master_seed: int = 0) -> Case:
    """Case `index`: a mask PNG with the film fuzzer's PNG and byte-level mutations."""
    rng = np.random.default_rng([master_seed, index, 3])
    seed = seeds[int(rng.integers(len(seeds)))]
    data, mutation = mutate(rng, seed)
    return Case(index, seed.name, "png", mutation, data, "mask")


def make_target_case(target: str, seeds: list[Seed], index: int, master_seed: int = 0) -> Case:
    """Case `index` of a new target."""
    maker = {"mask": make_mask_case, "card": make_card_case, "decision": make_decision_case}
    return maker[target](seeds, index, master_seed)


# --- classifiers ----------------------------------------------------------------------


def _clean(exc: BaseException, name: str | None = None) -> dict[str, str] | None:
    """A clean-error outcome for a one-line cxrkit error (naming `name` when given)."""
    from cxrkit.errors import CxrkitError

    if not isinstance(exc, CxrkitError):
        return None
    message = str(exc)
    if "\n" in message or (name is not None and name not in message):
        return {"outcome": "crash", "detail": f"unclean message: {message[:160]!r}"}
    return {"outcome": "clean_error", "detail": type(exc).__name__}


def _other(exc: BaseException) -> dict[str, str]:
    from cxrkit.io.reasons import describe_exception, is_fatal

    if is_fatal(exc):
        raise exc
    if isinstance(exc, MemoryError):
        return {"outcome": "clean_error", "detail": "MemoryError"}
    text = re.sub(r"<_io\.BytesIO object at 0x[0-9a-fA-F]+>", "(bytes)", describe_exception(exc))
    return {"outcome": "crash", "detail": f"raw {text[:160]}"}


def classify_mask(data: bytes, name: str) -> dict[str, str]:
    """`read_mask` on one mask PNG, at its own size and resized to 40 x 56."""
    from cxrkit.segment.data import read_mask

    try:
        mask = read_mask(io.BytesIO(data))
        resized = read_mask(io.BytesIO(data), (40, 56))
    except BaseException as exc:  # noqa: BLE001 - every outcome is classified
        return _clean(exc) or _other(exc)
    for m, shape in ((mask, None), (resized, (40, 56))):
        if not isinstance(m, np.ndarray) or m.dtype != bool or m.ndim != 2 or not m.size:
            return {"outcome": "bad_film", "detail": f"mask {getattr(m, 'dtype', m)!r}"}
        if shape is not None and m.shape != shape:
            return {"outcome": "bad_film", "detail": f"resized to {m.shape}, not {shape}"}
    return {"outcome": "ok", "detail": ""}


def card_problem(card: Any) -> str | None:
    """Why an accepted card breaks the card contract, or None."""
    from cxrkit.card import ModelCard
    from cxrkit.card.decision import expected_thresholds

    if not isinstance(card, ModelCard):
        return f"not a ModelCard: {type(card).__name__}"
    thresholds = card.thresholds
    if not all(isinstance(t, float) and math.isfinite(t) and 0 <= t <= 1 for t in thresholds):
        return f"thresholds {thresholds}"
    if card.decision is not None and card.task != "polarity":
        want = expected_thresholds(card.task, len(card.class_names))
        if len(thresholds) != want:
            return f"{len(thresholds)} thresholds for {card.task} ({want} expected)"
    try:
        again = ModelCard.from_dict(json.loads(json.dumps(card.to_dict())), "round trip")
    except Exception as exc:  # noqa: BLE001
        return f"does not read back: {type(exc).__name__}: {str(exc)[:100]}"
    if again != card:
        return "reads back as another card"
    return None


def classify_card(data: bytes, name: str) -> dict[str, str]:
    """`ModelCard.from_dict` on one fuzzed card JSON."""
    from cxrkit.card import ModelCard
    from cxrkit.card.schema import CardError

    d = json.loads(data)
    try:
        card = ModelCard.from_dict(d, name)
    except CardError as exc:
        return _clean(exc, name) or {"outcome": "crash", "detail": "?"}
    except BaseException as exc:  # noqa: BLE001 - every outcome is classified
        return _other(exc)
    problem = card_problem(card)
    if problem:
        return {"outcome": "bad_film", "detail": problem}
    return {"outcome": "ok", "detail": ""}


def _row(payload: dict) -> np.ndarray:
    values = np.array(payload["values"], dtype=np.float64)
    try:
        with np.errstate(all="ignore"):
            row = values.astype(payload["dtype"])
    except (ValueError, OverflowError):
        row = values
    if payload["dtype"] == "int64" and not np.isfinite(values).all():
        row = values  # no integer NaN: keep the float row
    return row[None] if payload["nest"] else row


def classify_decision(data: bytes, name: str) -> dict[str, str]:
    """A decision card on one fuzzed row: `Decision.row` and `ModelCard.decide` give a label
    only for a row of C finite numbers in [0, 1]; otherwise an error row / an error."""
    from cxrkit.card import ModelCard

    payload = json.loads(data)
    card = ModelCard.from_dict(CARDS[payload["card"]], "card")
    decision = card.require_decision()
    row = _row(payload)
    n = len(card.class_names)
    as_float = row.astype(np.float64)
    valid = row.shape == (n,) and bool(np.isfinite(as_float).all())
    valid = valid and bool(((as_float >= 0) & (as_float <= 1)).all())
    try:
        answer = decision.row(row)
    except BaseException as exc:  # noqa: BLE001 - every outcome is classified
        return _other(exc)
    if not valid:
        if "label" in answer or "error" not in answer:
            return {"outcome": "bad_film", "detail": f"row(): label on a broken row {answer}"}
    else:
        probs = answer.get("probabilities", {})
        if answer.get("label") is None or sorted(probs) != sorted(card.class_names):
            return {"outcome": "bad_film", "detail": f"row(): no label on a good row {answer}"}
        if card.task == "multiclass" and answer["label"] != card.class_names[int(row.argmax())]:
            return {"outcome": "bad_film", "detail": f"row(): not the argmax {answer}"}
    batch = row[None] if row.ndim == 1 else row
    flat = batch.astype(np.float64)
    valid = batch.shape == (1, n) and bool(np.isfinite(flat).all())
    valid = valid and bool(((flat >= 0) & (flat <= 1)).all())  # a batch of one good row
    try:
        labels = card.decide(batch)
    except BaseException as exc:  # noqa: BLE001
        if valid:
            return {"outcome": "crash", "detail": f"decide() refused a good row: {exc!r}"[:200]}
        return _clean(exc) or _decide_error(exc)
    if not valid:
        return {"outcome": "bad_film", "detail": f"decide(): a label on a {_broken(batch, n)}"}
    if row.ndim == 1 and labels != [answer["label"]]:
        return {"outcome": "bad_film", "detail": f"decide() {labels} != row() {answer['label']}"}
    return {"outcome": "ok", "detail": ""}


def _broken(batch: np.ndarray, n: int) -> str:
    """How a batch of one row is broken: its shape, a non-finite value, or its range."""
    if batch.shape != (1, n):
        return f"row of shape {batch.shape}"
    if not np.isfinite(batch.astype(np.float64)).all():
        return "non-finite row"
    return "row out of [0, 1]"


def _decide_error(exc: BaseException) -> dict[str, str]:
    from cxrkit.card.decision import DecisionError

    if isinstance(exc, DecisionError):
        return {"outcome": "clean_error", "detail": "DecisionError"}
    return _other(exc)


def classify_target(target: str, data: bytes, name: str) -> dict[str, str]:
    """The outcome of one case of `target` in this process."""
    from fuzz_outcomes import classify_read

    classify = {
        "film": classify_read,
        "mask": classify_mask,
        "card": classify_card,
        "decision": classify_decision,
    }[target]
    return classify(data, name)
