"""`cxr data polarity-set`: films from real datasets, half inverted, labelled, patient-disjoint."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cxrkit.cli.app import app
from cxrkit.data.polarity_set import NEGATIVE, POSITIVE, make_polarity_set
from cxrkit.data.splits import make_splits
from cxrkit.data.table import load_table
from cxrkit.errors import CxrkitError
from cxrkit.io import read_image, resize_film


def _rows(out: Path) -> list[dict[str, str]]:
    with (out / "labels.csv").open(newline="") as fh:
        return list(csv.DictReader(fh))


def test_half_of_each_source_is_inverted_and_pixels_match(
    nih_dir: Path, lungmask_dir: Path, tmp_path: Path
) -> None:
    out = tmp_path / "pol"
    summary = make_polarity_set([nih_dir, lungmask_dir], out, size=32, per_source=10, seed=3)
    rows = _rows(out)
    assert list(rows[0]) == ["path", "label", "patient_id", "source", "original"]
    assert len(rows) == summary["n_films"] == 20
    for source in ("nih1000", "covid_lungmasks"):
        labels = [r["label"] for r in rows if r["source"] == source]
        assert sorted(labels) == [NEGATIVE] * 5 + [POSITIVE] * 5
    assert all(r["patient_id"].startswith(r["source"] + ":") for r in rows)
    assert not any("neg" in r["path"] or "pos" in r["path"] for r in rows)  # no label in names
    for r in rows[:6]:
        written, _ = read_image(out / r["path"])
        source, _ = read_image(r["original"])
        expected = resize_film(source, 32)
        if r["label"] == NEGATIVE:
            expected = 1.0 - expected
        assert written.shape == (32, 32)
        assert np.abs(written - expected).max() <= 1.0 / 255 + 1e-6

    table = load_table(out)
    assert table.task == "binary" and table.class_names == [NEGATIVE, POSITIVE]
    splits = make_splits(table, val=0.2, test=0.2, seed=0)
    pids = {name: {table.records[i].patient_id for i in idx} for name, idx in splits.items()}
    assert not (pids["train"] & pids["val"] or pids["train"] & pids["test"])
    manifest = json.loads((out / "polarity_set.json").read_text())
    assert manifest["sources"]["nih1000"] == {"data": str(nih_dir), "positive": 5, "negative": 5}


def test_same_seed_same_set_and_another_seed_differs(nih_dir: Path, tmp_path: Path) -> None:
    make_polarity_set([nih_dir], tmp_path / "a", size=16, per_source=8, seed=1)
    make_polarity_set([nih_dir], tmp_path / "b", size=16, per_source=8, seed=1)
    make_polarity_set([nih_dir], tmp_path / "c", size=16, per_source=8, seed=2)
    a, b, c = (_rows(tmp_path / k) for k in "abc")
    assert a == b
    assert [(r["original"], r["label"]) for r in a] != [(r["original"], r["label"]) for r in c]


def test_same_folder_name_twice_gets_distinct_sources(nih_dir: Path, tmp_path: Path) -> None:
    summary = make_polarity_set(
        [nih_dir, nih_dir / "labels.csv"], tmp_path / "p", size=16, per_source=2
    )
    assert sorted(summary["sources"]) == ["nih1000", "nih1000-2"]


def test_refuses_a_non_empty_folder_and_bad_arguments(nih_dir: Path, tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "notes.txt").write_text("mine")
    with pytest.raises(CxrkitError, match="not empty"):
        make_polarity_set([nih_dir], tmp_path / "x", per_source=2)
    with pytest.raises(CxrkitError, match="per_source"):
        make_polarity_set([nih_dir], tmp_path / "y", per_source=0)
    with pytest.raises(CxrkitError, match="no such file"):
        make_polarity_set([tmp_path / "missing"], tmp_path / "z")


def test_unreadable_films_are_skipped_and_reported(tmp_path: Path, nih_dir: Path) -> None:
    src = tmp_path / "src"
    for cls in ("a", "b"):
        (src / cls).mkdir(parents=True)
    good = sorted((nih_dir / "images").glob("*.png"))[:3]
    for i, path in enumerate(good):
        (src / "a" / f"{i}.png").write_bytes(path.read_bytes())
    (src / "b" / "broken.png").write_bytes(good[0].read_bytes()[:100])
    summary = make_polarity_set([src], tmp_path / "out", size=16)
    assert summary["n_films"] == 3
    assert [Path(s["path"]).name for s in summary["skipped"]] == ["broken.png"]


def test_cli_writes_the_set(nih_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "cli"
    args = ["data", "polarity-set", str(nih_dir), "--out", str(out), "--size", "16"]
    result = CliRunner().invoke(app, [*args, "--per-source", "6", "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert len(_rows(out)) == 6
    assert "wrote 6 films" in result.output
