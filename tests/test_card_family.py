"""The lung and polarity cards are `ModelCard`s: the shipped (format 1) cards parse, migrate
and round-trip, and what today's writers save reads back with the same decision / points."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrkit.card import FORMAT_VERSION, CardError, ModelCard
from cxrkit.models.model_file import read_card, read_card_json
from cxrkit.polarity.model import DEFAULT_MODEL, PolarityModel, load_polarity_model
from cxrkit.polarity.net import CLASSES, PolarityNet
from cxrkit.segment.infer import DEFAULT_POSTPROCESS, LungModel, load_lung_model, probs_to_mask
from cxrkit.segment.model import LungNet, default_model_path, read_lung_card, save_lung_model

pytestmark = pytest.mark.usefixtures("one_torch_thread")
SMALL_DECODER = (16, 8, 8, 8, 8)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _small_lung() -> LungNet:
    torch.manual_seed(0)
    return LungNet(decoder_channels=SMALL_DECODER).eval()


def test_shipped_lung_card_migrates_and_round_trips() -> None:
    path = default_model_path()
    before = _sha(path)
    stored = read_card_json(path)
    assert stored.get("format_version", 1) == 1 and "threshold" in stored  # a v1 card
    card = read_lung_card(path)
    assert card.task == "segmentation" and card.network.kind == "lung_segmentation"
    assert card.decision is not None and card.decision.task == "segmentation"
    assert card.decision.threshold == stored["threshold"]
    assert card.thresholds == (stored["threshold"],)
    assert card.size == stored["preprocessing"]["size"]
    assert card.postprocess == stored["postprocess"] and card.views == tuple(stored["views"])
    assert len(card.network.members or ()) == 2 and card.operating_points is None
    written = card.to_dict()
    assert written["thresholds"] == [stored["threshold"]] and "threshold" not in written
    assert written["format_version"] == FORMAT_VERSION
    assert ModelCard.from_dict(written) == card
    assert read_card(path) == card  # the generic reader gives the same card
    lung = load_lung_model()
    assert isinstance(lung.card, ModelCard) and lung.threshold == stored["threshold"]
    assert lung.postprocess == stored["postprocess"] and lung.tta is stored["tta_hflip"]
    assert _sha(path) == before  # migrated on read, the asset itself untouched


def test_shipped_polarity_card_migrates_and_round_trips() -> None:
    before = _sha(DEFAULT_MODEL)
    stored = read_card_json(DEFAULT_MODEL)
    assert stored.get("format_version", 1) == 1 and isinstance(stored["thresholds"], dict)
    card = read_card(DEFAULT_MODEL)
    assert card.task == "polarity" and card.decision is None and card.thresholds == ()
    assert dict(card.operating_points or {}) == stored["thresholds"]
    assert card.network.widths == tuple(stored["widths"]) and card.network.view_head
    assert card.views == ("frontal", "lateral") and card.class_names == CLASSES
    written = card.to_dict()
    assert written["operating_points"] == stored["thresholds"] and "thresholds" not in written
    assert ModelCard.from_dict(written) == card
    with pytest.raises(CardError, match="no decision rule"):
        card.require_decision()
    model = load_polarity_model()
    assert isinstance(model.card, ModelCard) and model.card == card
    points = stored["thresholds"]
    assert model.fix_threshold == points["fix"]
    assert model.not_cxr_threshold == points["not_cxr"]
    assert model.lateral_threshold == points["lateral"]
    assert _sha(DEFAULT_MODEL) == before


def test_lung_card_from_the_trainer_reads_back_with_its_decision(tmp_path: Path) -> None:
    from cxrkit.segment.train import SegTrainConfig, _card_fields, choice_fields, lung_card

    cfg = SegTrainConfig(size=64)
    choice = {"threshold": 0.4, "postprocess": None, "tta_hflip": True}
    fields = _card_fields(cfg, choice)
    assert fields["thresholds"] == [0.4] and "threshold" not in fields
    path = save_lung_model(tmp_path / "model.safetensors", _small_lung(), fields)
    stored = read_card_json(path)
    assert stored["thresholds"] == [0.4] and "threshold" not in stored
    assert stored["format_version"] == FORMAT_VERSION and stored["architecture"] == "unet"
    card = read_lung_card(path)
    assert card.decision == lung_card(cfg, choice).decision and card.decision.threshold == 0.4
    assert ModelCard.from_dict(card.to_dict()) == card
    lung = load_lung_model(path)
    assert lung.threshold == 0.4 and lung.tta and lung.postprocess is None  # no clean-up kept
    probs = np.array([[0.39, 0.4], [0.41, 0.9]], np.float32)
    assert probs_to_mask(lung, probs).tolist() == [[False, True], [True, True]]
    # every choice of the search round-trips through a card (`probe.card.merged`)
    probe = LungModel(lung.net, lung_card(cfg, {}), path)
    assert probe.threshold == 0.5 and probe.postprocess == DEFAULT_POSTPROCESS
    for post in (DEFAULT_POSTPROCESS, None):
        for threshold in (0.5, 0.4, 0.6):
            pick = {"threshold": threshold, "postprocess": post, "tta_hflip": False}
            probe.card = probe.card.merged(**choice_fields(pick))
            assert (probe.threshold, probe.postprocess, probe.tta) == (threshold, post, False)


def test_lung_card_of_an_older_writer_still_reads(tmp_path: Path) -> None:
    """A v1 card given as JSON with `threshold: t` is migrated before it is written."""
    shipped = read_card_json(default_model_path())
    old = {k: v for k, v in shipped.items() if k not in ("members", "architecture")}
    path = save_lung_model(tmp_path / "old.safetensors", _small_lung(), {**old, "threshold": 0.45})
    card = read_lung_card(path)
    assert card.decision.threshold == 0.45 and read_card_json(path)["thresholds"] == [0.45]


def test_shipped_lung_card_saved_again_keeps_its_decision(tmp_path: Path) -> None:
    shipped = read_lung_card(default_model_path())
    path = save_lung_model(tmp_path / "again.safetensors", _small_lung(), shipped)
    again = read_lung_card(path)
    assert again.decision == shipped.decision and again.postprocess == shipped.postprocess
    assert again.network.members is None and again.network.encoder == "mobilenetv2_100"


def test_polarity_card_from_the_trainer_reads_back_with_its_points(tmp_path: Path) -> None:
    from cxrkit.polarity.model import save_polarity_model

    points = {"not_cxr": 0.55, "fix": 0.9, "lateral": 0.8}
    fields = {
        "task": "polarity",
        "class_names": list(CLASSES),
        "views": ["frontal", "lateral"],
        "preprocessing": {"size": 64, "resize_mode": "squash", "channels": "grayscale"},
        "operating_points": points,
    }
    torch.manual_seed(0)
    path = save_polarity_model(tmp_path / "polarity.safetensors", PolarityNet(), fields)
    stored = read_card_json(path)
    assert stored["operating_points"] == points and "thresholds" not in stored
    card = read_card(path)
    assert dict(card.operating_points or {}) == points and card.decision is None
    assert ModelCard.from_dict(card.to_dict()) == card
    model = load_polarity_model(path)
    assert (model.not_cxr_threshold, model.fix_threshold, model.lateral_threshold) == (
        0.55,
        0.9,
        0.8,
    )
    # the shipped card written again by today's writer keeps its operating points
    shipped = read_card(DEFAULT_MODEL)
    again = read_card(save_polarity_model(tmp_path / "again.safetensors", PolarityNet(), shipped))
    assert again.operating_points == shipped.operating_points and again == shipped
    # a v1-style dict (named thresholds under `thresholds`) is migrated, not refused
    v1 = {**{k: v for k, v in fields.items() if k != "operating_points"}, "thresholds": points}
    assert PolarityModel(model.net, v1).card.operating_points == points


def test_invalid_lung_and_polarity_cards_are_never_written(tmp_path: Path) -> None:
    from cxrkit.polarity.model import save_polarity_model

    lung = {"task": "segmentation", "class_names": ["lungs"], "preprocessing": {"size": 64}}
    with pytest.raises(CardError, match="thresholds"):
        save_lung_model(tmp_path / "bad.safetensors", _small_lung(), {**lung, "thresholds": [1.5]})
    pol = {"task": "polarity", "preprocessing": {"size": 64}}
    with pytest.raises(CardError, match="operating_points"):
        save_polarity_model(
            tmp_path / "bad.safetensors", PolarityNet(), {**pol, "operating_points": {"fix": 2}}
        )
    assert not (tmp_path / "bad.safetensors").exists()
