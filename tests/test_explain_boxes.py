"""Boxes from heat maps, IoU and the pointing game, on real NIH and TBX11K reference boxes."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from cxrkit.explain import (
    Box,
    best_iou,
    box_heatmap,
    box_iou,
    boxes_from_heatmap,
    pointing_game,
    read_coco_boxes,
    read_nih_boxes,
    score_heatmap,
)
from cxrkit.io import read_image


@pytest.fixture(scope="module")
def nih_bbox_csv() -> Path:
    spec = importlib.util.find_spec("torchxrayvision")
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("torchxrayvision (pip install .[dev]) ships BBox_List_2017.csv.gz")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "BBox_List_2017.csv.gz"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def tbx11k(samples_dir: Path) -> Path:
    root = samples_dir / "tbx11k"
    if not root.is_dir():
        pytest.skip("TBX11K samples not in ../shared/data/samples")
    return root


def test_box_iou_by_hand() -> None:
    a = Box(0, 0, 10, 10)
    assert box_iou(a, a) == pytest.approx(1.0)
    assert box_iou(a, Box(5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou(a, Box(10, 10, 20, 20)) == 0.0
    assert Box.from_xywh(2, 3, 4, 5).xywh() == (2, 3, 4, 5)


def test_nih_bbox_list_parses_every_row(nih_bbox_csv: Path) -> None:
    boxes = read_nih_boxes(nih_bbox_csv)
    all_boxes = [b for bs in boxes.values() for b in bs]
    assert len(all_boxes) == 984  # rows of the official file
    assert len(boxes) == 880  # distinct films
    assert {b.label for b in all_boxes} == {
        "Atelectasis",
        "Cardiomegaly",
        "Effusion",
        "Infiltrate",
        "Mass",
        "Nodule",
        "Pneumonia",
        "Pneumothorax",
    }
    first = boxes["00013118_008.png"][0]
    assert first.label == "Atelectasis"
    assert first.xywh() == pytest.approx(
        (225.084745762712, 547.019216763771, 86.7796610169491, 79.1864406779661)
    )
    assert all(0 <= b.x0 < b.x1 <= 1030 and 0 <= b.y0 < b.y1 <= 1030 for b in all_boxes)


def test_heat_map_from_each_nih_box_scores_iou_one_and_a_shifted_one_less(
    nih_bbox_csv: Path,
) -> None:
    boxes = read_nih_boxes(nih_bbox_csv)
    every = [b for name in sorted(boxes) for b in boxes[name]]
    scale = 0.25  # 1024 -> 256 and every 4th box keep the test fast; the math is scale-free
    ious, shifted_ious, hits, far_hits = [], [], [], []
    for truth in (b.scaled(scale, scale) for b in every[::4]):
        heat = box_heatmap((256, 256), [truth])
        ious.append(best_iou(boxes_from_heatmap(heat, min_area_fraction=0), [truth]))
        hits.append(pointing_game(heat, [truth], tolerance=0))
        moved = box_heatmap((256, 256), [truth.shifted(truth.width / 2, 0)])
        shifted_ious.append(best_iou(boxes_from_heatmap(moved, min_area_fraction=0), [truth]))
        far_hits.append(pointing_game(np.roll(heat, 128, axis=1), [truth], tolerance=0))
    ious = np.array(ious)
    assert len(ious) == 246
    assert np.median(ious) > 0.9 and ious.min() > 0.5  # pixel rounding only
    assert all(hits)
    assert np.mean(shifted_ious) == pytest.approx(1 / 3, abs=0.05)  # half-width shift: 1/3
    assert np.mean(far_hits) < 0.2


def test_tbx11k_coco_boxes_on_their_films(tbx11k: Path) -> None:
    boxes, sizes = read_coco_boxes(tbx11k / "annotations" / "json" / "TBX11K_train.json")
    assert sorted(boxes) == ["health/h0001.png", "tb/tb0005.png", "tb/tb0007.png"]
    assert boxes["health/h0001.png"] == []
    assert len(boxes["tb/tb0005.png"]) == 1 and len(boxes["tb/tb0007.png"]) == 2
    assert boxes["tb/tb0005.png"][0].label == "ActiveTuberculosis"
    for name, truth in boxes.items():
        image, _ = read_image(tbx11k / "imgs" / name)
        assert image.shape == sizes[name] == (512, 512)
        if not truth:
            continue
        exact = score_heatmap(box_heatmap(image.shape, truth, blur=2.0), truth)
        assert exact["iou"] > 0.9 and exact["pointing_hit"]
        shifted = [b.shifted(b.width * 0.6, b.height * 0.6) for b in truth]
        moved = score_heatmap(box_heatmap(image.shape, shifted, blur=2.0), truth)
        assert moved["iou"] < 0.5 * exact["iou"]


def test_boxes_from_heatmap_finds_separate_blobs_in_pixel_coordinates() -> None:
    heat = np.zeros((300, 400), np.float32)
    heat[10:50, 20:80] = 1.0
    heat[200:260, 300:390] = 0.8
    heat[100:102, 100:102] = 0.9  # too small to keep
    found = boxes_from_heatmap(heat, threshold=0.5)
    assert [(b.x0, b.y0, b.x1, b.y1) for b in found] == [(20, 10, 80, 50), (300, 200, 390, 260)]
    assert found[0].score == pytest.approx(1.0)
    assert boxes_from_heatmap(np.zeros((10, 10))) == []
