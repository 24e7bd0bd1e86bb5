"""`cxr polarity check | fix`, `--fix-polarity` at ingestion, and the warnings of `predict`."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from cxrkit.cli.app import app
from cxrkit.data.table import load_table
from cxrkit.io import read_image
from cxrkit.polarity import fix_table_polarity

KERMANY = ["IM-0115-0001.png", "person1000_bacteria_2931.png"]


@pytest.fixture(scope="module")
def films(kermany_dir: Path, nih_dir: Path, tmp_path_factory) -> dict[str, Path]:
    """Two real films as read, and inverted copies of each (PNG, like a bad export)."""
    folder = tmp_path_factory.mktemp("films")
    out = {}
    for name in KERMANY:
        src = kermany_dir / "images" / name
        image, _ = read_image(src)
        out[name] = src
        inv = folder / f"inverted_{name}"
        Image.fromarray(np.round((1 - image) * 255).astype(np.uint8)).save(inv)
        out[f"inverted_{name}"] = inv
    return out


def _csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_check_writes_path_polarity_probability(films, tmp_path) -> None:
    out = tmp_path / "preds.csv"
    result = CliRunner().invoke(
        app, ["polarity", "check", *map(str, films.values()), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    header = "path,polarity,probability,view,p_lateral,not_cxr,error"
    assert out.read_text().splitlines()[0] == header
    rows = {Path(r["path"]).name: r for r in _csv(out)}
    assert len(rows) == 4
    for name, row in rows.items():
        assert row["polarity"] == ("negative" if name.startswith("inverted_") else "positive")
        assert 0.5 <= float(row["probability"]) <= 1.0


def test_fix_re_inverts_negatives_and_copies_the_rest(films, tmp_path) -> None:
    out = tmp_path / "fixed"
    result = CliRunner().invoke(
        app, ["polarity", "fix", *map(str, films.values()), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    log = {Path(r["path"]).name: r for r in _csv(out / "polarity_fix.csv")}
    for name in KERMANY:
        original, _ = read_image(films[name])
        assert log[name]["action"] == "copied"
        assert Path(log[name]["out"]).read_bytes() == films[name].read_bytes()
        assert log[f"inverted_{name}"]["action"] == "inverted"
        repaired, _ = read_image(log[f"inverted_{name}"]["out"])
        assert np.abs(repaired - original).max() <= 1 / 255 + 1e-6


def test_fix_table_polarity_swaps_only_the_inverted_records(films, tmp_path) -> None:
    rows = [("normal" if i % 2 else "pneumonia", p) for i, p in enumerate(films.values())]
    labels = tmp_path / "labels.csv"
    labels.write_text("path,label\n" + "".join(f"{p},{lab}\n" for lab, p in rows))
    table = load_table(labels)
    fixed = fix_table_polarity(table, tmp_path / "polarity_fixed")
    changed = [
        (a.path, b.path)
        for a, b in zip(table.records, fixed.records, strict=True)
        if a.path != b.path
    ]
    assert sorted(a.name for a, _ in changed) == sorted(f"inverted_{n}" for n in KERMANY)
    assert [r.labels for r in fixed.records] == [r.labels for r in table.records]
    for _, new in changed:
        image, _ = read_image(new)
        assert new.parent == tmp_path / "polarity_fixed" and image.mean() > 0.2
    assert len(_csv(tmp_path / "polarity_fixed" / "polarity_fixes.csv")) == 2


def test_predict_flags_inverted_films_and_non_films(films, tmp_path) -> None:
    import skimage.data

    from cxrkit.classifier.api import predict_batches
    from cxrkit.models import create_model

    photo = tmp_path / "coffee.png"
    Image.fromarray(skimage.data.coffee()).save(photo)
    torch.manual_seed(0)
    net = create_model("small_cnn", num_classes=2, random_init=True)
    card = {
        "class_names": ["normal", "pneumonia"],
        "task": "binary",
        "thresholds": [0.5],
        "preprocessing": {"size": 64, "resize_mode": "squash"},
    }
    paths = [films[KERMANY[0]], films[f"inverted_{KERMANY[0]}"], photo]
    rows = list(predict_batches(net, card, paths, num_workers=0, device="cpu"))
    assert [r["not_cxr"] for r in rows] == [False, False, True]
    assert [r["polarity"] for r in rows[:2]] == ["positive", "negative"]
    assert rows[0]["warning"] == ""
    assert "inverted" in rows[1]["warning"] and "chest film" in rows[2]["warning"]
