"""load_table on the shared sets and on small synthetic layouts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrkit.data import LabelTable, Record, load_table
from cxrkit.errors import DatasetError


def make_png(path: Path, value: int = 128, size: tuple[int, int] = (16, 12)) -> Path:
    """Write a small 8-bit grayscale PNG (width, height = size) filled with `value`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("L", size, color=value).save(path)
    return path


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text.strip() + "\n", encoding="utf-8")
    return path


def test_kermany_binary_counts(kermany_dir: Path) -> None:
    table = load_table(kermany_dir)
    assert isinstance(table, LabelTable)
    assert len(table) == 5216
    assert table.task == "binary"
    assert table.class_names == ["normal", "pneumonia"]
    assert table.class_counts() == {"normal": 1341, "pneumonia": 3875}
    y = table.targets()
    assert y.dtype == np.int64 and y.shape == (5216,)
    assert int((y == 1).sum()) == 3875
    assert table.skipped == []
    rec = table.records[0]
    assert isinstance(rec, Record) and rec.path.is_file()
    assert rec.patient_id == rec.row["patient_id"] and rec.row["label"] == rec.labels[0]
    # The CSV path itself gives the same table.
    same = load_table(kermany_dir / "labels.csv")
    assert [r.path for r in same.records] == [r.path for r in table.records]


def test_kermany_other_column_is_multiclass(kermany_dir: Path) -> None:
    table = load_table(kermany_dir, label_column="subtype")
    assert table.task == "multiclass"
    assert table.class_names == ["bacterial", "none", "viral"]
    assert table.class_counts()["none"] == 1341


def test_nih_findings_multilabel(nih_dir: Path) -> None:
    table = load_table(nih_dir, label_column="findings")
    assert table.task == "multilabel"
    assert len(table.class_names) == 14
    assert table.class_names == sorted(table.class_names)
    y = table.targets()
    assert y.dtype == np.float32 and y.shape == (1000, 14)
    assert int((y.sum(axis=1) == 0).sum()) == 499  # empty cell = no finding
    assert int(y[:, table.class_names.index("Effusion")].sum()) == 170
    assert int((y.sum(axis=1) > 1).sum()) == 213  # rows with a '|'


def test_nih_label_puts_negative_class_first(nih_dir: Path) -> None:
    table = load_table(nih_dir)
    assert table.class_names == ["normal", "abnormal"]  # index 1 is the positive class
    assert table.class_counts() == {"normal": 499, "abnormal": 501}
    flipped = load_table(nih_dir, class_names=["abnormal", "normal"])
    assert (flipped.targets() == 1 - table.targets()).all()


def test_covid_multiclass(lungmask_dir: Path) -> None:
    table = load_table(lungmask_dir)
    assert table.task == "multiclass"
    assert len(table) == 79
    assert table.class_counts()["covid"] == 51
    assert table.targets().max() == len(table.class_names) - 1


def test_skipped_rows_are_reported_and_strict_raises(tmp_path: Path) -> None:
    make_png(tmp_path / "a.png")
    make_png(tmp_path / "b.png")
    make_png(tmp_path / "c.png")
    make_png(tmp_path / "e.png")
    write_csv(
        tmp_path / "labels.csv",
        """
path,label
a.png,cat
b.png,dog
missing.png,cat
c.png,
a.png,dog
e.png,cat
""",
    )
    table = load_table(tmp_path)
    assert [r.path.name for r in table.records] == ["a.png", "b.png", "e.png"]
    assert table.patient_ids() == ["a", "b", "e"]  # no patient_id column: the file stem
    reasons = dict(table.skipped)
    assert reasons["missing.png"] == "file not found"
    assert "empty label" in reasons["c.png"]
    assert any("duplicate" in r for p, r in table.skipped if p == "a.png")
    with pytest.raises(DatasetError, match="missing.png"):
        load_table(tmp_path, strict=True)
    # Fixed class names: a label outside them is skipped as unknown.
    fixed = load_table(tmp_path, class_names=["cat", "bird"])
    assert fixed.class_names == ["cat", "bird"]
    assert ("b.png", "unknown label 'dog'") in fixed.skipped
    assert fixed.targets().tolist() == [0, 0]


def test_missing_column_names_the_columns_present(tmp_path: Path) -> None:
    make_png(tmp_path / "a.png")
    write_csv(tmp_path / "labels.csv", "path,diagnosis\na.png,x")
    with pytest.raises(DatasetError, match=r"missing column 'label'.*path, diagnosis"):
        load_table(tmp_path)
    with pytest.raises(DatasetError, match="missing column 'findings'"):
        load_table(tmp_path, label_column="findings")


def test_empty_table_and_all_rows_unusable(tmp_path: Path) -> None:
    write_csv(tmp_path / "labels.csv", "path,label")
    with pytest.raises(DatasetError, match="no rows"):
        load_table(tmp_path)
    write_csv(tmp_path / "labels.csv", "path,label\nnope.png,x\nnope2.png,y")
    with pytest.raises(DatasetError, match="no usable rows"):
        load_table(tmp_path)


def test_absolute_paths_and_patient_column(tmp_path: Path) -> None:
    elsewhere = make_png(tmp_path / "elsewhere" / "x.png")
    make_png(tmp_path / "set" / "img" / "y.png")
    write_csv(
        tmp_path / "set" / "labels.csv",
        f"path,label,patient_id\n{elsewhere},pos,p1\nimg/y.png,neg,\n",
    )
    table = load_table(tmp_path / "set")
    assert table.records[0].path == elsewhere
    assert table.relpath(0) == str(elsewhere)  # outside the root: stays absolute
    assert table.relpath(1) == "img/y.png"
    assert table.patient_ids() == ["p1", "y"]  # empty patient_id falls back to the stem
    assert table.class_names == ["neg", "pos"]


def test_class_folders(tmp_path: Path) -> None:
    make_png(tmp_path / "PNEUMONIA" / "p1.png")
    make_png(tmp_path / "PNEUMONIA" / "sub" / "p2.jpeg")
    make_png(tmp_path / "NORMAL" / "n1.png")
    (tmp_path / "NORMAL" / "notes.txt").write_text("not an image")
    (tmp_path / "empty").mkdir()
    table = load_table(tmp_path)
    assert table.class_names == ["NORMAL", "PNEUMONIA"]
    assert table.task == "binary"
    assert sorted(table.relpath(r) for r in table.records) == [
        "NORMAL/n1.png",
        "PNEUMONIA/p1.png",
        "PNEUMONIA/sub/p2.jpeg",
    ]
    assert table.targets().tolist() == [0, 1, 1]
    with pytest.raises(DatasetError, match="label column"):
        load_table(tmp_path, label_column="findings")


def test_negative_name_first_even_when_not_alphabetical(tmp_path: Path) -> None:
    make_png(tmp_path / "tb" / "a.png")
    make_png(tmp_path / "healthy" / "b.png")
    assert load_table(tmp_path).class_names == ["healthy", "tb"]
    other = tmp_path / "other"
    make_png(other / "b_class" / "a.png")
    make_png(other / "a_class" / "b.png")
    assert load_table(other).class_names == ["a_class", "b_class"]  # no negative name: sorted


def test_folder_without_images(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no labels.csv"):
        load_table(tmp_path)
    (tmp_path / "cls").mkdir()
    (tmp_path / "cls" / "readme.txt").write_text("x")
    with pytest.raises(DatasetError, match="no labels.csv"):
        load_table(tmp_path)
    with pytest.raises(DatasetError, match="no such file"):
        load_table(tmp_path / "nothing-here")


def test_task_override_and_multilabel_parsing(tmp_path: Path) -> None:
    for name in "abcd":
        make_png(tmp_path / f"{name}.png")
    write_csv(
        tmp_path / "labels.csv",
        "path,label\na.png,x\nb.png,y\nc.png,No Finding\nd.png,\n",
    )
    multi = load_table(tmp_path, task="multilabel")
    assert multi.task == "multilabel"
    assert multi.class_names == ["x", "y"]  # 'No Finding' means no label
    assert multi.targets().tolist() == [[1, 0], [0, 1], [0, 0], [0, 0]]
    single = load_table(tmp_path, task="multiclass")
    assert single.task == "multiclass"
    assert single.class_names == ["No Finding", "x", "y"]  # d.png skipped: empty label
    with pytest.raises(DatasetError, match="exactly 2 classes"):
        load_table(tmp_path, task="binary")
    with pytest.raises(DatasetError, match="unknown task"):
        load_table(tmp_path, task="regression")


def test_single_class_needs_class_names(tmp_path: Path) -> None:
    make_png(tmp_path / "pneumonia" / "a.png")
    with pytest.raises(DatasetError, match="only one class"):
        load_table(tmp_path)
    table = load_table(tmp_path, class_names=["normal", "pneumonia"])
    assert table.task == "binary" and table.targets().tolist() == [1]
