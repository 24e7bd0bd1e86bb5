"""Patient-disjoint stratified splits on the shared sets, and their CSV round trip."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cxrkit.data import LabelTable, load_table, make_splits, read_split_csv, write_split_csv
from cxrkit.errors import DatasetError


def check_split(table: LabelTable, splits: dict[str, np.ndarray], max_pp: float) -> None:
    """Parts cover the table once, share no patient, have the asked sizes and class ratios."""
    assert set(splits) == {"train", "val", "test"}
    every = np.concatenate(list(splits.values()))
    assert sorted(every.tolist()) == list(range(len(table)))
    for idx in splits.values():
        assert idx.dtype == np.int64 and (np.diff(idx) > 0).all()
    pids = np.array(table.patient_ids())
    parts = {name: set(pids[idx]) for name, idx in splits.items()}
    assert not parts["train"] & parts["val"]
    assert not parts["train"] & parts["test"]
    assert not parts["val"] & parts["test"]
    n = len(table)
    for name, want in (("train", 0.70), ("val", 0.15), ("test", 0.15)):
        assert abs(len(splits[name]) / n - want) < 0.02, name
    y = table.targets()
    onehot = y if y.ndim == 2 else np.eye(table.num_classes)[y]
    whole = onehot.mean(axis=0)
    for name, idx in splits.items():
        gap_pp = 100 * np.abs(onehot[idx].mean(axis=0) - whole).max()
        assert gap_pp <= max_pp, (name, gap_pp)


def test_kermany_splits(kermany_dir: Path) -> None:
    table = load_table(kermany_dir)
    splits = make_splits(table, seed=0)
    check_split(table, splits, max_pp=2.0)
    again = make_splits(table, seed=0)
    assert all(np.array_equal(splits[k], again[k]) for k in splits)
    other = make_splits(table, seed=1)
    assert not np.array_equal(splits["test"], other["test"])
    check_split(table, other, max_pp=2.0)


@pytest.mark.parametrize("seed", [0, 7])
def test_nih_label_splits(nih_dir: Path, seed: int) -> None:
    table = load_table(nih_dir)
    check_split(table, make_splits(table, seed=seed), max_pp=2.0)


def test_nih_findings_splits_balance_every_finding(nih_dir: Path) -> None:
    # 264 patients, some with 60+ films: every finding's share within 5 points per part.
    table = load_table(nih_dir, label_column="findings")
    check_split(table, make_splits(table, seed=0), max_pp=5.0)


def test_fractions(nih_dir: Path) -> None:
    table = load_table(nih_dir)
    no_val = make_splits(table, val=0.0, test=0.3)
    assert len(no_val["val"]) == 0
    assert abs(len(no_val["test"]) - 300) <= 20
    with pytest.raises(DatasetError, match="fractions"):
        make_splits(table, val=0.6, test=0.5)


def test_split_csv_round_trip(nih_dir: Path, tmp_path: Path) -> None:
    table = load_table(nih_dir)
    splits = make_splits(table, seed=3)
    out = write_split_csv(tmp_path / "splits.csv", table, splits)
    lines = out.read_text().splitlines()
    assert lines[0] == "path,patient_id,split"
    assert len(lines) == len(table) + 1
    assert lines[1].startswith("images/")  # relative to the table root
    back = read_split_csv(out, table)
    assert all(np.array_equal(splits[k], back[k]) for k in splits)


def test_split_csv_must_match_the_table(nih_dir: Path, tmp_path: Path) -> None:
    table = load_table(nih_dir)
    splits = make_splits(table)
    out = write_split_csv(tmp_path / "splits.csv", table, splits)
    lines = out.read_text().splitlines()
    renamed = [lines[0], "images/not-there.png,x,train", *lines[2:]]
    out.write_text("\n".join(renamed) + "\n")
    with pytest.raises(DatasetError, match="does not match"):
        read_split_csv(out, table)
    out.write_text("\n".join([lines[0], lines[1].rsplit(",", 1)[0] + ",holdout"]) + "\n")
    with pytest.raises(DatasetError, match="unknown split"):
        read_split_csv(out, table)
    partial = {"train": splits["train"], "val": splits["val"]}
    with pytest.raises(DatasetError, match="in no split"):
        write_split_csv(tmp_path / "partial.csv", table, partial)
