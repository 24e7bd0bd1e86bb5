"""CXRDataset items, and a corrupt file that never stops an epoch."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

from cxrkit.classifier.dataset import CXRDataset, collate_skip_bad
from cxrkit.data import load_table


@pytest.fixture
def table_with_bad_file(tmp_path: Path):
    """Seven films (two classes) and one text file renamed .png, listed in labels.csv."""
    rows = ["path,label,patient_id"]
    for i in range(7):
        arr = np.full((20, 30), 30 * i, dtype=np.uint8)
        Image.fromarray(arr, mode="L").save(tmp_path / f"f{i}.png")
        rows.append(f"f{i}.png,{'normal' if i % 2 else 'pneumonia'},p{i}")
    (tmp_path / "broken.png").write_text("<html>not a film</html>")
    rows.insert(4, "broken.png,normal,p9")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    return load_table(tmp_path)


def test_items(table_with_bad_file, caplog: pytest.LogCaptureFixture) -> None:
    table = table_with_bad_file
    assert table.class_names == ["normal", "pneumonia"]
    bad_index = [table.relpath(r) for r in table.records].index("broken.png")
    ds = CXRDataset(table, size=32)
    assert len(ds) == 8
    item = ds[0]
    assert item["image"].shape == (1, 32, 32) and item["image"].dtype == torch.float32
    assert item["target"].dtype == torch.long and item["target"].ndim == 0
    assert item["target"].item() == table.targets()[0] and item["index"] == 0
    with caplog.at_level(logging.WARNING, logger="cxrkit.classifier.dataset"):
        assert ds[bad_index] is None
    assert "broken.png" in caplog.text
    assert len(ds.bad_files) == 1 and ds.bad_files[0][0].endswith("broken.png")
    # Indices select records; `index` stays the table index.
    sub = CXRDataset(table, indices=[5, 2], size=16, transform=lambda x: 1.0 - x)
    assert len(sub) == 2 and sub[0]["index"] == 5
    plain = CXRDataset(table, size=16)[5]["image"]
    torch.testing.assert_close(sub[0]["image"], 1.0 - plain)
    with pytest.raises(IndexError):
        CXRDataset(table, indices=[100])


def test_bad_file_does_not_kill_the_epoch(table_with_bad_file, tmp_path: Path) -> None:
    table = table_with_bad_file
    ds = CXRDataset(table, size=32, cache_dir=tmp_path / "cache")
    loader = DataLoader(ds, batch_size=3, num_workers=2, collate_fn=collate_skip_bad)
    seen: list[int] = []
    for _ in range(2):  # second epoch reads from the cache
        for batch in loader:
            assert batch is not None
            assert batch["image"].shape[1:] == (1, 32, 32)
            assert batch["target"].dtype == torch.long
            seen.extend(batch["index"].tolist())
    good = [i for i, r in enumerate(table.records) if r.path.name != "broken.png"]
    assert sorted(seen) == sorted(good * 2)
    assert len(list((tmp_path / "cache").glob("32-*/*.npy"))) == 7


def test_collate_skip_bad() -> None:
    assert collate_skip_bad([None, None]) is None
    item = {"image": torch.zeros(1, 4, 4), "target": torch.tensor(1), "index": 3}
    batch = collate_skip_bad([None, item, item])
    assert batch["image"].shape == (2, 1, 4, 4)
    assert batch["index"].tolist() == [3, 3]


def test_multilabel_targets(nih_dir: Path) -> None:
    table = load_table(nih_dir, label_column="findings")
    ds = CXRDataset(table, indices=np.arange(990, 1000), size=64)
    y = table.targets()
    for i in range(len(ds)):
        item = ds[i]
        assert item["target"].dtype == torch.float32 and item["target"].shape == (14,)
        np.testing.assert_array_equal(item["target"].numpy(), y[item["index"]])
        assert item["image"].min() >= 0.0 and item["image"].max() <= 1.0
        assert item["image"].std() > 0.01  # a real film, not a blank
