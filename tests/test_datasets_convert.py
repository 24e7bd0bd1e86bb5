"""`convert`: resized PNG copies and WebDataset shards; reruns resume and give the same bytes."""

from __future__ import annotations

import csv
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cxrkit.data.table import load_table
from cxrkit.datasets import prepare_dataset
from cxrkit.datasets.convert import convert_dataset, parse_size, sample_key
from cxrkit.datasets.merge import merge_datasets
from cxrkit.errors import DatasetError
from datasets_fixtures import film, mask


def _prepared_montgomery(tmp: Path, n: int = 6, size: int = 96) -> Path:
    root = tmp / "MontgomerySet"
    for i in range(n):
        stem = f"MCUCXR_{i + 1:04d}_{i % 2}"
        film(root / "CXR_png" / f"{stem}.png", size=size, seed=i)
        mask(root / "ManualMask" / "leftMask" / f"{stem}.png", size=size, left=True)
        mask(root / "ManualMask" / "rightMask" / f"{stem}.png", size=size, left=False)
    prepare_dataset("montgomery", root, tmp / "prepared")
    return tmp / "prepared"


def test_png_copies_keep_aspect_masks_and_resume(tmp_path):
    prepared = _prepared_montgomery(tmp_path)
    first = convert_dataset(prepared, tmp_path / "png", size=48, progress=False)
    assert first == {
        "films": 6, "written": 6, "already_done": 0, "unreadable": 0, "shards": 0,
        "format": "png8",
    }  # fmt: skip
    table = load_table(tmp_path / "png")  # the copy is itself a cxrkit dataset
    assert len(table) == 6 and table.class_names == ["normal", "tb"]
    img = Image.open(table.records[0].path)
    assert img.size == (48, 48) and img.mode == "L"
    with (tmp_path / "png" / "labels.csv").open() as fh:
        row = next(csv.DictReader(fh))
    m = np.asarray(Image.open(tmp_path / "png" / row["mask"]))
    assert m.shape == (48, 48) and set(np.unique(m)) == {0, 255}
    again = convert_dataset(prepared, tmp_path / "png", size=48, progress=False)
    assert again["written"] == 0 and again["already_done"] == 6


def test_png16_keeps_more_grey_levels(tmp_path):
    prepared = _prepared_montgomery(tmp_path, n=2)
    convert_dataset(prepared, tmp_path / "p16", size=40, fmt="png16", progress=False)
    img = Image.open(next((tmp_path / "p16" / "images").iterdir()))
    assert img.mode in ("I;16", "I") and np.asarray(img).max() > 255


def test_webdataset_shards_are_deterministic_and_resumable(tmp_path):
    prepared = _prepared_montgomery(tmp_path)
    out = tmp_path / "wds"
    s = convert_dataset(prepared, out, size=48, fmt="webdataset", shard_size="3KB", progress=False)
    shards = sorted(out.glob("shard-*.tar"))
    assert s["shards"] == len(shards) >= 2
    with tarfile.open(shards[0]) as tar:
        names = tar.getnames()
        key = names[0].split(".")[0]
        assert names[:3] == [f"{key}.png", f"{key}.mask.png", f"{key}.json"]
        meta = json.loads(tar.extractfile(f"{key}.json").read())
        assert meta["key"] == key and meta["label"] in ("normal", "tb")
        assert all(m.mtime == 0 and m.uid == 0 for m in tar.getmembers())
    rows = list(csv.DictReader((out / "labels.csv").open()))
    assert len(rows) == 6 and {r["shard"] for r in rows} == {p.name for p in shards}
    digests = {p.name: p.read_bytes() for p in shards}
    # an interrupted run: drop the last shard from the manifest, rerun, same bytes
    manifest = json.loads((out / "shards.json").read_text())
    manifest["shards"] = manifest["shards"][:-1]
    (out / "shards.json").write_text(json.dumps(manifest))
    (out / shards[-1].name).unlink()
    again = convert_dataset(prepared, out, size=48, fmt="webdataset", shard_size="3KB",
                            progress=False)  # fmt: skip
    assert again["already_done"] > 0 and again["written"] < 6
    assert {p.name: p.read_bytes() for p in sorted(out.glob("shard-*.tar"))} == digests


def test_boxes_are_scaled_with_the_film(tmp_path, shared_data):
    root = shared_data / "samples" / "tbx11k"
    if not root.is_dir():
        pytest.skip("shared TBX11K sample not here")
    prepare_dataset("tbx11k", root, tmp_path / "prep")
    convert_dataset(tmp_path / "prep", tmp_path / "small", size=128, progress=False)
    before = list(csv.DictReader((tmp_path / "prep" / "boxes.csv").open()))
    after = list(csv.DictReader((tmp_path / "small" / "boxes.csv").open()))
    assert len(before) == len(after) > 0
    assert float(after[0]["x"]) == pytest.approx(float(before[0]["x"]) / 4, abs=0.01)


def test_a_killed_png_conversion_resumes_with_every_box(tmp_path, shared_data):
    root = shared_data / "samples" / "tbx11k"
    if not root.is_dir():
        pytest.skip("shared TBX11K sample not here")
    prepare_dataset("tbx11k", root, tmp_path / "prep")
    out = tmp_path / "small"
    convert_dataset(tmp_path / "prep", out, size=128, progress=False)
    whole = (out / "boxes.csv").read_text()
    # killed before the end: no scales.json or boxes.csv yet, the last film half-written
    (out / "scales.json").unlink()
    (out / "boxes.csv").unlink()
    last = sorted((out / "images").iterdir())[-1]
    last.unlink()
    journal = (out / "scales.partial.jsonl").read_text().splitlines()
    kept = [line for line in journal if last.stem not in line]
    (out / "scales.partial.jsonl").write_text("\n".join(kept) + '\n["cut', encoding="utf-8")
    again = convert_dataset(tmp_path / "prep", out, size=128, progress=False)
    assert again["written"] == 1 and again["already_done"] == len(journal) - 1
    assert (out / "boxes.csv").read_text() == whole
    with pytest.raises(DatasetError, match="another output folder"):  # no mixed sizes
        convert_dataset(tmp_path / "prep", out, size=64, progress=False)


def test_bad_convert_arguments(tmp_path):
    with pytest.raises(DatasetError, match="shard size"):
        parse_size("lots")
    assert parse_size("1GB") == 10**9 and parse_size("64MiB") == 64 * 2**20
    assert sample_key("a/b.c/x.y.png") == "a__b_c__x_y"
    with pytest.raises(DatasetError, match="format must be"):
        convert_dataset(tmp_path, tmp_path / "o", fmt="jpeg")
    with pytest.raises(DatasetError, match="no labels.csv"):
        convert_dataset(tmp_path, tmp_path / "o")


def test_merge_marks_unlabelled_findings_uncertain(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for folder, findings, rows in (
        (a, ["Nodule", "Pneumonia"], [("x.png", "Nodule", "1"), ("y.png", "", "2")]),
        (b, ["Pneumothorax"], [("z.png", "Pneumothorax", "1")]),
    ):
        folder.mkdir()
        for name, _, _ in rows:
            film(folder / name)
        lines = ["path,label,uncertain,patient_id"] + [f"{n},{lab},,{p}" for n, lab, p in rows]
        (folder / "labels.csv").write_text("\n".join(lines) + "\n")
        (folder / "dataset.json").write_text(
            json.dumps({"name": folder.name, "multilabel": True, "findings": findings})
        )
    info = merge_datasets([a, b], tmp_path / "m")
    assert info["films"] == 3 and info["patients"] == 3  # patient "1" of a is not "1" of b
    assert info["findings"] == ["Nodule", "Pneumonia", "Pneumothorax"]
    table = load_table(tmp_path / "m")
    y = table.targets(mask_uncertain=True)
    by_name = {r.path.name: i for i, r in enumerate(table.records)}
    assert y[by_name["y.png"]].tolist()[:2] == [0.0, 0.0]  # a labels these: absent
    assert np.isnan(y[by_name["y.png"], 2])  # a never looked for pneumothorax
    assert np.isnan(y[by_name["z.png"], 0]) and y[by_name["z.png"], 2] == 1.0
    with pytest.raises(DatasetError, match="two or more"):
        merge_datasets([a], tmp_path / "m2")


def test_shards_of_a_class_sorted_set_mix_the_classes(tmp_path):
    """labels.csv sorted by class (kermany's is) must not give one-class shards: films are
    sharded in a seeded shuffled order, the same on every run."""
    root = tmp_path / "sorted"
    rows = []
    for i in range(40):
        label = "normal" if i < 20 else "pneumonia"  # class-sorted, as kermany_pneumonia
        film(root / "images" / f"f{i:02d}.png", size=32, seed=i)
        rows.append({"path": f"images/f{i:02d}.png", "label": label, "patient_id": f"p{i}"})
    with (root / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, ["path", "label", "patient_id"])
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "wds"
    s = convert_dataset(root, out, size=32, fmt="webdataset", shard_size="40KB", progress=False)
    assert s["shards"] >= 3
    by_shard: dict[str, list[str]] = {}
    for row in csv.DictReader((out / "labels.csv").open()):
        by_shard.setdefault(row["shard"], []).append(row["label"])
    full = [labels for labels in by_shard.values() if len(labels) >= 6]
    assert full and all(0.15 <= labels.count("normal") / len(labels) <= 0.85 for labels in full)
    again = tmp_path / "wds2"
    convert_dataset(root, again, size=32, fmt="webdataset", shard_size="40KB", progress=False)
    assert [p.read_bytes() for p in sorted(out.glob("shard-*.tar"))] == [
        p.read_bytes() for p in sorted(again.glob("shard-*.tar"))
    ]
