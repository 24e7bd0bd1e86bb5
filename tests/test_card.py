"""`ModelCard`: one schema, migrated on read, validated once, with one decision rule."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from cxrkit.card import (
    FORMAT_HISTORY,
    FORMAT_VERSION,
    CardError,
    Decision,
    DecisionError,
    ModelCard,
)

CARDS = Path(__file__).parent / "fixtures" / "cards"
#: A card JSON for each format_version in the history (v1: written by cxrkit before v2).
FIXTURES = {
    1: ["v1_binary.json", "v1_multilabel_default_thresholds.json", "v1_polarity.json",
        "v1_segmentation.json"],
}  # fmt: skip


def _json(name: str) -> dict:
    return json.loads((CARDS / name).read_text())


def test_every_format_version_in_the_history_has_fixtures_and_reads() -> None:
    assert FORMAT_VERSION == FORMAT_HISTORY[-1] == 2
    for version in FORMAT_HISTORY[:-1]:
        assert FIXTURES[version], f"no fixture card for format_version {version}"
        for name in FIXTURES[version]:
            raw = _json(name)
            assert raw.get("format_version", 1) == version
            card = ModelCard.from_dict(raw, source=name)
            written = card.to_dict()
            assert written["format_version"] == FORMAT_VERSION
            assert ModelCard.from_dict(written) == card  # v2 round-trips unchanged


def test_v1_migration_keeps_every_decision() -> None:
    binary = ModelCard.from_dict(_json("v1_binary.json"))
    assert binary.decision is not None
    assert binary.decision.thresholds == tuple(_json("v1_binary.json")["thresholds"])
    multilabel = ModelCard.from_dict(_json("v1_multilabel_default_thresholds.json"))
    assert multilabel.thresholds == (0.5, 0.5, 0.5)  # v1's "[] means 0.5 each"
    polarity = ModelCard.from_dict(_json("v1_polarity.json"))
    assert polarity.decision is None
    assert polarity.operating_points == {"not_cxr": 0.5, "fix": 0.9, "lateral": 0.95}
    assert "thresholds" not in polarity.to_dict()  # no more dict-valued thresholds
    lungs = ModelCard.from_dict(_json("v1_segmentation.json"))
    assert lungs.decision is not None and lungs.decision.threshold == 0.6
    assert lungs.to_dict()["thresholds"] == [0.6] and "threshold" not in lungs.to_dict()


def _binary(**changes: object) -> dict:
    return {**_json("v1_binary.json"), "format_version": 2, **changes}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"thresholds": [float("nan")]}, "thresholds"),
        ({"thresholds": [1.5]}, "thresholds"),
        ({"thresholds": [0.2, 0.3]}, "thresholds"),
        ({"task": "multilabel", "class_names": ["a", "b", "c"], "thresholds": [0.5]},
         "thresholds"),
        ({"surprise": 1}, "surprise"),
        ({"task": "segmentation?"}, "task"),
        ({"preprocessing": {"size": 0}}, "preprocessing.size"),
        ({"preprocessing": {"size": 64, "sise": 3}}, "sise"),
        ({"probability_calibration": {"method": "magic"}}, "probability_calibration"),
        ({"prior_shift": {"train": [0.5], "site": [0.5, 0.5]}}, "prior_shift.train"),
        ({"ood": {"threshold": float("inf")}}, "ood.threshold"),
        ({"format_version": 3}, "newer cxrkit"),
    ],
)  # fmt: skip
def test_invalid_cards_are_errors_naming_the_file_and_the_field(changes: dict, field: str) -> None:
    with pytest.raises(CardError) as err:
        ModelCard.from_dict(_binary(**changes), source="runs/x/model.safetensors")
    assert "runs/x/model.safetensors" in str(err.value) and field in str(err.value)


def test_a_model_file_with_a_bad_card_fails_when_read(tmp_path: Path) -> None:
    """Predict and evaluate read the same file: a multi-label card with too few thresholds
    is refused on read for both (before, predict used 0.5 silently and evaluate raised)."""
    from cxrkit.classifier import Classifier
    from cxrkit.models.model_file import CARD_KEY, read_card, read_card_json
    from serve_helpers import save_random_model

    path = save_random_model(tmp_path / "m.safetensors")
    raw = read_card_json(path)
    raw.update(task="multilabel", thresholds=[0.5])
    from safetensors.torch import load_file, save_file

    save_file(load_file(str(path)), str(path), metadata={CARD_KEY: json.dumps(raw)})
    for read in (read_card, Classifier.load):
        with pytest.raises(CardError, match=r"m\.safetensors.*thresholds"):
            read(path)


def test_writing_an_invalid_card_is_refused(tmp_path: Path) -> None:
    import torch

    from cxrkit.models.model_file import save_model_file

    with pytest.raises(CardError, match="thresholds"):
        save_model_file(tmp_path / "m.safetensors", torch.nn.Linear(2, 2),
                        _binary(thresholds=[math.nan]))  # fmt: skip
    assert not (tmp_path / "m.safetensors").exists()


def test_merged_changes_fields_and_validates_again() -> None:
    card = ModelCard.from_dict(_binary())
    moved = card.merged(thresholds=[0.8], threshold_method="youden")
    assert moved.thresholds == (0.8,) and moved.decision.method == "youden"
    assert card.thresholds != moved.thresholds  # frozen: the original is unchanged
    with pytest.raises(CardError):
        card.merged(thresholds=[2.0])
    with pytest.raises(AttributeError):
        card.task = "multiclass"  # type: ignore[misc]


PROBS = np.array([[0.7, 0.2, 0.1], [0.1, 0.45, 0.45], [0.3, 0.3, 0.4]])


def test_one_decision_for_each_task() -> None:
    names = ("a", "b", "c")
    binary = Decision("binary", ("normal", "pneumonia"), (0.8,))
    assert binary.labels(np.array([[0.3, 0.7], [0.1, 0.9]])) == ["normal", "pneumonia"]
    assert binary.index(np.array([0.3, 0.7])) == 0  # the threshold, not the argmax
    assert [r["name"] for r in binary.report(np.array([0.3, 0.7]))] == ["pneumonia"]
    multiclass = Decision("multiclass", names)
    assert multiclass.labels(PROBS) == ["a", "b", "c"]  # ties: the first class
    assert [r["threshold"] for r in multiclass.report(PROBS[0])] == [None] * 3
    multilabel = Decision("multilabel", names, (0.5, 0.4, 0.05))
    assert multilabel.labels(PROBS) == ["a|c", "b|c", "c"]
    assert multilabel.positive(PROBS).sum() == 5
    lungs = Decision("segmentation", ("lungs",), (0.6,))
    assert lungs.positive(np.array([[0.59, 0.6]])).tolist() == [[False, True]]


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_a_row_that_is_not_probabilities_gets_an_error_and_no_label(task: str) -> None:
    names = ["x", "y"]
    decision = Decision.build(task, names, 0.5)
    for bad in ([np.nan, 0.5], [0.2, np.inf], [-0.1, 1.1], [0.5, 0.5, 0.5]):
        assert set(decision.row(np.array(bad))) == {"error"}
    with pytest.raises(DecisionError):
        decision.report(np.array([np.nan, 0.5]))


def test_build_takes_user_thresholds_the_way_evaluate_always_did() -> None:
    assert Decision.build("multilabel", ["a", "b"], 0.3).thresholds == (0.3, 0.3)
    assert Decision.build("multilabel", ["a", "b"], None).thresholds == (0.5, 0.5)
    assert Decision.build("multiclass", ["a", "b", "c"], [0.9]).thresholds == ()
    with pytest.raises(DecisionError, match="needs 3 threshold"):
        Decision.build("multilabel", ["a", "b", "c"], [0.3, 0.4])


def test_card_json_is_read_only_in_the_card_module() -> None:
    """The issue's rule: no `card[...]` / `card.get(...)` outside `cxrkit.card`."""
    import re

    src = Path(__file__).parents[1] / "src" / "cxrkit"
    pattern = re.compile(r"\bcard(\[|\.get\()")
    hits = [
        f"{path.relative_to(src)}:{n}"
        for path in src.rglob("*.py")
        if "card" not in path.relative_to(src).parts[:1]
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []
