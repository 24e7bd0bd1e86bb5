"""Dice / IoU / HD95 on hand-made masks, and the heat-map energy share inside a mask."""

from __future__ import annotations

import math

import numpy as np
import pytest

from cxrkit.segment.metrics import dice, hd95, heatmap_energy_in_mask, iou, summarize_scores


def square(top: int, left: int, side: int = 10, shape: tuple[int, int] = (40, 40)) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[top : top + side, left : left + side] = True
    return m


def test_identical_masks_score_perfectly() -> None:
    a = square(5, 5)
    assert dice(a, a) == 1.0
    assert iou(a, a) == 1.0
    assert hd95(a, a) == 0.0


def test_shifted_squares_have_known_scores() -> None:
    a, b = square(10, 10), square(10, 13)  # 10x10 squares, 3 px apart: overlap 10 x 7
    assert dice(a, b) == pytest.approx(2 * 70 / 200)
    assert iou(a, b) == pytest.approx(70 / 130)
    assert hd95(a, b) == pytest.approx(3.0)
    assert hd95(b, a) == pytest.approx(3.0)


def test_disjoint_and_empty_masks() -> None:
    a, far = square(0, 0), square(30, 30)
    assert dice(a, far) == 0.0 and iou(a, far) == 0.0
    assert hd95(a, far) > 20
    empty = np.zeros_like(a)
    assert dice(empty, empty) == 1.0 and hd95(empty, empty) == 0.0
    assert dice(a, empty) == 0.0 and math.isinf(hd95(a, empty))
    with pytest.raises(ValueError):
        dice(a, a[:-1])


def test_summary_ranks_the_worst_films_by_dice() -> None:
    rows = [
        {"path": f"f{i}", "dice": d, "iou": d, "hd95": 10 * i}
        for i, d in enumerate([0.9, 0.5, 0.99, 0.7])
    ]
    s = summarize_scores(rows, worst=2)
    assert s["n"] == 4
    assert s["dice"]["mean"] == pytest.approx(0.7725)
    assert s["dice"]["min"] == 0.5 and s["hd95"]["max"] == 30
    assert [w["path"] for w in s["worst"]] == ["f1", "f3"]


def test_heatmap_energy_inside_outside_and_half() -> None:
    mask = square(10, 10, side=20)
    inside = np.zeros((40, 40), np.float32)
    inside[15:25, 15:25] = 1.0
    outside = np.zeros((40, 40), np.float32)
    outside[0:5, 0:5] = 2.0
    assert heatmap_energy_in_mask(inside, mask) == pytest.approx(1.0)
    assert heatmap_energy_in_mask(outside, mask) == pytest.approx(0.0)
    assert heatmap_energy_in_mask(inside + 2 * outside, mask) == pytest.approx(100 / 200)
    assert math.isnan(heatmap_energy_in_mask(np.zeros((40, 40)), mask))
    negative_only_outside = inside - outside  # negative values carry no energy
    assert heatmap_energy_in_mask(negative_only_outside, mask) == pytest.approx(1.0)


def test_heatmap_of_another_size_is_resized_to_the_mask() -> None:
    mask = np.zeros((64, 64), dtype=bool)
    mask[:, :32] = True  # left half
    cam = np.zeros((8, 8), np.float32)
    cam[:, :2] = 1.0  # far left columns of a coarse CAM
    assert heatmap_energy_in_mask(cam, mask) > 0.95
