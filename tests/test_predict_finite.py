"""No label without finite probabilities: the card's decision rule and `cxr predict`'s rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from bad_files import encode, noisy_film
from cxrkit.card import Decision
from cxrkit.classifier.api import label_row, predict_batches

CLASSES = ["normal", "pneumonia"]


@pytest.mark.parametrize(
    "probs", [[np.nan, 0.5], [0.2, np.inf], [-0.1, 1.1], [0.5, 0.5, 0.5], [-np.inf, np.nan]]
)
@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_non_finite_probabilities_give_an_error_and_no_label(probs: list, task: str) -> None:
    row = Decision.build(task, CLASSES, [0.5]).row(np.array(probs, np.float32))
    assert set(row) == {"error"} and "non-finite" in row["error"]


def test_finite_probabilities_keep_their_label() -> None:
    row = Decision.build("binary", CLASSES, [0.5]).row(np.array([0.25, 0.75], np.float32))
    assert row == {"label": "pneumonia", "probabilities": {"normal": 0.25, "pneumonia": 0.75}}


def test_label_row_is_a_deprecated_shim_of_the_decision() -> None:
    with pytest.deprecated_call():
        row = label_row(np.array([0.25, 0.75], np.float32), CLASSES, "binary", [0.8])
    assert row["label"] == "normal"


class _NanModel(torch.nn.Module):
    """A classifier whose logits are NaN (a broken or hostile model file)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 2), float("nan"))


def test_predict_rows_of_a_nan_model_have_errors_not_labels(tmp_path: Path) -> None:
    film = tmp_path / "film.png"
    film.write_bytes(encode(noisy_film(64), "PNG"))
    card = {
        "class_names": CLASSES,
        "task": "binary",
        "thresholds": [0.5],
        "preprocessing": {"size": 32, "resize_mode": "squash"},
    }
    rows = list(
        predict_batches(_NanModel(), card, [film], num_workers=0, device="cpu", screen=False)
    )
    assert len(rows) == 1 and "error" in rows[0]
    assert rows[0].get("label") is None and rows[0].get("probabilities") is None
