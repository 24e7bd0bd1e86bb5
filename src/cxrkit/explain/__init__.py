"""Explain predictions: CAM heat maps, overlays, boxes from heat maps and their scores."""

from cxrkit.explain.annotations import read_coco_boxes, read_nih_boxes
from cxrkit.explain.api import explain_film
from cxrkit.explain.boxes import (
    Box,
    best_iou,
    box_heatmap,
    box_iou,
    boxes_from_heatmap,
    pointing_game,
    score_heatmap,
)
from cxrkit.explain.cam import METHODS, compute_cam, to_original
from cxrkit.explain.overlay import draw_boxes, overlay_heatmap, save_png

__all__ = [
    "METHODS",
    "Box",
    "best_iou",
    "box_heatmap",
    "box_iou",
    "boxes_from_heatmap",
    "compute_cam",
    "draw_boxes",
    "explain_film",
    "overlay_heatmap",
    "pointing_game",
    "read_coco_boxes",
    "read_nih_boxes",
    "save_png",
    "score_heatmap",
    "to_original",
]
