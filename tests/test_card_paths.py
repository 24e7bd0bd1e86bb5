"""Model files travel: no card written by cxrkit, and none shipped with it, holds a local path.

Each trainer runs tiny (seconds) from absolute paths (data, weights, cache, run folder) so
that any path that leaks into the card would show; the card is then scanned as JSON.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest

from cxrkit.models.model_file import read_card
from site_helpers import run_cxr

REPO = Path(__file__).resolve().parents[1]
ASSETS = REPO / "src" / "cxrkit" / "assets"
# an absolute POSIX path, a home-relative one or a Windows drive path, anywhere in a string
_ABSOLUTE = re.compile(r"(?:^|[\s\"'(=:,])(?:/(?:[\w.-]+/)*[\w.-]+|~/|[A-Za-z]:[\\/])")


def local_paths(card: Any, roots: tuple[Path, ...] = ()) -> list[str]:
    """Every string of `card` (keys too) that is or holds an absolute path or names a root."""
    names = {str(p) for p in (Path.home(), Path(tempfile.gettempdir()), REPO, *roots)}
    found: list[str] = []

    def walk(value: Any, where: str) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                walk(key, f"{where}.<key>")
                walk(item, f"{where}.{key}")
        elif isinstance(value, list | tuple):
            for i, item in enumerate(value):
                walk(item, f"{where}[{i}]")
        elif isinstance(value, str) and (_ABSOLUTE.search(value) or any(n in value for n in names)):
            found.append(f"{where}: {value!r}")

    walk(card, "card")
    return found


def test_the_scanner_finds_paths() -> None:
    home = str(Path.home())
    bad = {"data": f"{home}/films", "w": {"file": "C:\\weights\\x.pth"}, "n": ["see /tmp/x"]}
    assert len(local_paths(bad)) == 3
    good = {"name": "kermany_pneumonia", "file": "efficientnet-lite0.pth", "size": "224/2"}
    assert local_paths(good) == []


@pytest.mark.parametrize("path", sorted(ASSETS.rglob("*.safetensors")), ids=lambda p: p.name)
def test_shipped_model_cards_hold_no_local_path(path: Path) -> None:
    assert local_paths(read_card(path)) == []


def _copy_set(src: Path, dst: Path, per_class: int) -> Path:
    """A class-folder copy of `per_class` films per class of a labels.csv set, under `dst`."""
    import csv

    rows = list(csv.DictReader((src / "labels.csv").open()))
    for label in sorted({r["label"] for r in rows}):
        (dst / label).mkdir(parents=True)
        for r in [r for r in rows if r["label"] == label][:per_class]:
            shutil.copy(src / r["path"], dst / label / Path(r["path"]).name)
    return dst


@pytest.fixture(scope="module")
def trained(
    kermany_dir: Path, site_dir: Path, weights_dir: Path, tmp_path_factory
) -> dict[str, Path]:
    """`cxr train` from absolute paths: data, ImageNet weights, cache, run folder and an
    external set (scored only)."""
    root = tmp_path_factory.mktemp("travel").resolve()
    data = _copy_set(kermany_dir, root / "films", per_class=12)
    weights = next((weights_dir / "efficientnet_lite0_imagenet").glob("*.pth")).resolve()
    run = root / "run"
    code, _, err = run_cxr(
        "train", "--data", data, "--out", run, "--backbone", "efficientnet_lite0",
        "--weights", weights, "--epochs", "1", "--image-size", "64", "--num-workers", "0",
        "--cache-dir", root / "cache", "--set", "n_bootstrap=0", "--no-progress",
        "--external", site_dir.resolve(),
    )  # fmt: skip
    assert code == 0, err
    return {"root": root, "run": run, "model": run / "model.safetensors"}


def test_train_card_holds_no_local_path(trained: dict[str, Path], shared_data: Path) -> None:
    card = read_card(trained["model"]).to_dict()
    assert card["training"]["data"]["name"] == "films"
    assert card["training"]["weights"]["file"] == "efficientnet-lite0-57934424.pth"
    assert "kermany_site" in json.dumps(card["metrics"]["external"])
    assert local_paths(card, (trained["root"], shared_data.resolve().parent)) == []


def test_calibrate_card_holds_no_local_path(trained: dict[str, Path], site_dir: Path) -> None:
    out = trained["root"] / "calibrated" / "model.safetensors"
    code, _, err = run_cxr(
        "calibrate", trained["model"], "--data", site_dir.resolve(), "--out", out,
        "--n-bootstrap", "0", "--num-workers", "0",
    )  # fmt: skip
    assert code == 0, err
    card = read_card(out).to_dict()
    assert card["site_calibration"]["set"] == "kermany_site"
    assert local_paths(card, (trained["root"], site_dir.resolve())) == []


def test_segment_train_card_holds_no_local_path(weights_dir: Path, tmp_path: Path) -> None:
    from segment_helpers import synthetic_annotator

    root = tmp_path.resolve()
    data = synthetic_annotator(root / "lungset", 10, 0)
    weights = next((weights_dir / "mobilenetv2_imagenet_features").glob("*.pt")).resolve()
    code, _, err = run_cxr(
        "segment", "train", "--data", data, "--out", root / "run", "--weights", weights,
        "--epochs", "1", "--size", "64", "--val", "0.2", "--test", "0.2", "--threads", "1",
    )  # fmt: skip
    assert code == 0, err
    assert local_paths(read_card(root / "run" / "model.safetensors"), (root,)) == []


def test_polarity_train_card_holds_no_local_path(
    kermany_dir: Path, shared_data: Path, tmp_path: Path
) -> None:
    from cxrkit.polarity import PolarityTrainConfig, train_polarity
    from test_polarity_train import _tiny_set

    root = tmp_path.resolve()
    dirs = _tiny_set(kermany_dir, shared_data, root)
    cfg = PolarityTrainConfig(
        steps=3, finetune_steps=2, batch_size=32, eval_every=2,
        others_per_kind=2, test_others_per_kind=2, workers=1,
    )  # fmt: skip
    train_polarity(dirs, root / "run", cfg, cache_dir=root / "cache")
    card = read_card(root / "run" / "polarity.safetensors").to_dict()
    assert local_paths(card, (root,)) == []
    assert os.fspath(root) not in json.dumps(card)
