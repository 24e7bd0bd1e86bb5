"""Lateral films and a frontal-only lung model: `cxr segment` skips them with a reason and
`crop: lungs` keeps the whole film with a warning; a model that lists laterals segments them."""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cxrkit.card import CardError, ModelCard
from cxrkit.cli.app import app
from cxrkit.guard import supported_views, view_skip_reason
from cxrkit.io import read_image
from cxrkit.segment.infer import load_lung_model
from cxrkit.segment.model import default_model_path, load_lung_net, save_lung_model

LATERAL = "images/16664_2_1.png"  # lungmasks_v7, view L, a test-part patient
FRONTAL = "00000001_000.png"  # samples: an NIH frontal film


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _lung_file(root: Path, views: list[str]) -> Path:
    """The shipped lung model with its card's `views` set to `views`."""
    net, card = load_lung_net(default_model_path())
    return save_lung_model(
        root / f"lungs-{'-'.join(views)}.safetensors", net, card.merged(views=views)
    )


def test_card_views_default_to_frontal() -> None:
    lung = {"task": "segmentation", "class_names": ["lungs"], "preprocessing": {"size": 64}}
    assert supported_views(ModelCard.from_dict(lung)) == ("frontal",)
    both = ModelCard.from_dict({**lung, "views": ["frontal", "lateral"]})
    assert supported_views(both) == ("frontal", "lateral")
    with pytest.raises(CardError, match="views"):
        supported_views(ModelCard.from_dict({**lung, "views": ["oblique"]}))
    assert view_skip_reason("frontal", 0.01, ("frontal",)) == ""
    reason = view_skip_reason("lateral", 0.97, ("frontal",))
    assert reason.startswith("lateral view (p_lateral=0.97)") and "\n" not in reason


def test_segment_skips_a_lateral_film_for_a_frontal_only_model(
    shared_data: Path, samples_dir: Path, tmp_path: Path
) -> None:
    lateral, frontal = shared_data / "lungmasks_v7" / LATERAL, samples_dir / FRONTAL
    model = _lung_file(tmp_path, ["frontal"])
    out = tmp_path / "masks"
    result = CliRunner().invoke(
        app, ["segment", str(lateral), str(frontal), "--out", str(out), "--model", str(model)]
    )
    assert result.exit_code == 0, result.output
    assert "1 skipped" in result.output
    assert "lateral view" in " ".join(result.output.split())  # rich may wrap the line
    assert not (out / lateral.name).exists() and not (out / "overlays" / lateral.name).exists()
    assert (out / frontal.name).is_file()
    rows = {Path(r["path"]).name: r for r in csv.DictReader((out / "masks.csv").open())}
    assert rows[lateral.name]["mask"] == "" and rows[lateral.name]["view"] == "lateral"
    assert rows[lateral.name]["skipped"].startswith("lateral view")
    assert rows[frontal.name]["skipped"] == "" and rows[frontal.name]["view"] == "frontal"


def test_segment_writes_a_lateral_mask_when_the_model_lists_laterals(
    shared_data: Path, tmp_path: Path
) -> None:
    lateral = shared_data / "lungmasks_v7" / LATERAL
    model = _lung_file(tmp_path, ["frontal", "lateral"])
    out = tmp_path / "masks"
    result = CliRunner().invoke(
        app, ["segment", str(lateral), "--out", str(out), "--model", str(model), "--no-overlays"]
    )
    assert result.exit_code == 0, result.output
    assert (out / lateral.name).is_file() and "0 skipped" in result.output


def test_crop_lungs_keeps_a_lateral_film_whole_with_a_warning(
    shared_data: Path, samples_dir: Path, monkeypatch, caplog
) -> None:
    from cxrkit.segment import crop

    shipped = load_lung_model()
    frontal_only = dataclasses.replace(
        shipped, card=shipped.card.merged(tta_hflip=False, views=["frontal"])
    )
    monkeypatch.setattr(crop, "_box_model", lambda: frontal_only)
    film, _ = read_image(shared_data / "lungmasks_v7" / LATERAL)
    with caplog.at_level(logging.WARNING, logger="cxrkit"):
        out = crop.apply_crop(film, "lungs")
    assert out is film
    assert any("kept the full film" in r.message and "lateral" in r.message for r in caplog.records)
    caplog.clear()
    frontal, _ = read_image(samples_dir / FRONTAL)
    with caplog.at_level(logging.WARNING, logger="cxrkit"):
        cropped = crop.apply_crop(frontal, "lungs")
    assert cropped.shape != frontal.shape and np.isfinite(cropped).all()
    assert not caplog.records


def test_segment_lungs_refuses_a_lateral_film_unless_told(
    shared_data: Path, samples_dir: Path, tmp_path: Path
) -> None:
    from cxrkit.errors import UnsupportedViewError
    from cxrkit.segment.infer import segment_lungs

    lateral, _ = read_image(shared_data / "lungmasks_v7" / LATERAL)
    frontal_only = load_lung_model(_lung_file(tmp_path, ["frontal"]))
    with pytest.raises(UnsupportedViewError, match="lateral view"):
        segment_lungs(lateral, frontal_only)
    forced = segment_lungs(lateral, frontal_only, check_view=False)
    assert forced.shape == lateral.shape and forced.dtype == bool
    both = load_lung_model(_lung_file(tmp_path, ["frontal", "lateral"]))
    np.testing.assert_array_equal(segment_lungs(lateral, both), forced)  # same weights
    assert segment_lungs(samples_dir / FRONTAL, frontal_only).any()  # frontal films pass
