"""Two annotators' lung masks as one set list with one patient split; per-set/view scoring."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from cxrkit.cli.app import app
from cxrkit.data.patient_split import patient_part
from cxrkit.errors import DatasetError
from cxrkit.segment.sets import (
    doubly_masked,
    load_mask_sets,
    patient_splits,
    read_set_split,
    write_set_split,
)
from segment_helpers import synthetic_annotator

runner = CliRunner()
# A doubly masked film (both annotators, same patient and file name) and a lateral film
# (lungmasks_v7 view L, whose mask is empty like every lateral mask of that set).
DOUBLE = "images/41591_2020_819_Fig1_HTML.webp-day10.png"
LATERAL = "images/nejmoa2001191_f3-L.png"


@pytest.fixture(scope="module")
def v7_dir(shared_data: Path) -> Path:
    path = shared_data / "lungmasks_v7"
    if not path.is_dir():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(scope="module")
def both_sets(lungmask_dir: Path, v7_dir: Path):
    return load_mask_sets([lungmask_dir, v7_dir])


def test_two_sets_load_with_one_patient_split(both_sets, tmp_path: Path) -> None:
    films = both_sets
    names = {f.set_name for f in films}
    assert names == {"covid_lungmasks", "lungmasks_v7"}
    assert sum(f.set_name == "covid_lungmasks" for f in films) == 77  # 2 rows have no mask
    assert sum(f.set_name == "lungmasks_v7" for f in films) == 287
    assert sum(f.view_group == "lateral" for f in films) == 17
    splits = patient_splits(films)
    part = {int(i): name for name, idx in splits.items() for i in idx}
    assert len(part) == len(films)
    # one side per patient, whichever set the film comes from (the screening net's hash)
    for i, f in enumerate(films):
        assert part[i] == patient_part(f.patient_id)
    pairs = doubly_masked(films)
    assert len(pairs) == 49  # as the set's SOURCE.md counts them
    assert all(part[i] == part[j] for i, j in pairs)
    assert all(films[i].set_name != films[j].set_name for i, j in pairs)

    path = write_set_split(tmp_path / "split.csv", films, splits)
    rows = list(csv.DictReader(path.open()))
    assert rows[0].keys() >= {"set", "path", "patient_id", "view", "split"}
    assert {r["set"] for r in rows} == names and len(rows) == len(films)
    back = read_set_split(path, films)
    for name in splits:
        np.testing.assert_array_equal(np.sort(back[name]), np.sort(splits[name]))


def test_split_file_must_know_every_set(both_sets, lungmask_dir: Path, tmp_path: Path) -> None:
    one = [f for f in both_sets if f.set_name == "covid_lungmasks"]
    path = write_set_split(tmp_path / "split.csv", one, patient_splits(one))
    with pytest.raises(DatasetError, match="lungmasks_v7"):
        read_set_split(path, both_sets)
    # a one-set split without a `set` column (the v1 format) still reads for that set
    old = tmp_path / "old.csv"
    old.write_text(
        "path,patient_id,split\n" + "".join(f"{f.path},{f.patient_id},train\n" for f in one)
    )
    assert len(read_set_split(old, one)["train"]) == len(one)
    with pytest.raises(DatasetError, match="no `set` column"):
        read_set_split(old, both_sets)


def _mini_set(root: Path, source: Path, paths: list[str]) -> Path:
    """A set folder named like `source` holding a labels.csv of `paths` (absolute)."""
    root.mkdir(parents=True)
    with (source / "labels.csv").open(newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["path"] in paths]
    with (root / "labels.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, "path": source / r["path"], "mask": source / r["mask"]})
    return root


def test_evaluate_reports_sets_views_and_annotators(
    lungmask_dir: Path, v7_dir: Path, tmp_path: Path
) -> None:
    import torch

    torch.set_num_threads(1)
    a = _mini_set(tmp_path / "covid_lungmasks", lungmask_dir, [DOUBLE])
    b = _mini_set(tmp_path / "lungmasks_v7", v7_dir, [DOUBLE, LATERAL])
    out = tmp_path / "eval"
    result = runner.invoke(app, ["segment", "evaluate", "--data", a, "--data", b, "--out", out])
    assert result.exit_code == 0, result.output + repr(result.exception)
    metrics = json.loads((out / "metrics.json").read_text())
    groups = metrics["groups"]
    assert set(groups["set"]) == {"covid_lungmasks", "lungmasks_v7"}
    assert groups["set"]["covid_lungmasks"]["n"] == 1 and groups["set"]["lungmasks_v7"]["n"] == 1
    assert set(groups["view"]) == {"frontal"} and metrics["n"] == 2
    assert set(groups["set_view"]) == {"covid_lungmasks/frontal", "lungmasks_v7/frontal"}
    # the lateral film's reference mask is empty: listed, not scored as Dice 0 or 1
    assert [r["path"].endswith("f3-L.png") for r in metrics["no_reference"]] == [True]
    agree = metrics["annotators"]
    assert agree["n"] == 1 and 0.5 < agree["inter_annotator"]["mean"] < 1.0
    assert set(agree["model"]) == {"covid_lungmasks", "lungmasks_v7"}
    assert agree["model"]["covid_lungmasks"]["mean"] == pytest.approx(
        groups["set"]["covid_lungmasks"]["dice"]["mean"]
    )
    assert metrics["model_views"] == ["frontal"]
    assert len(list((out / "worst").glob("*.png"))) == 2
    rows = list(csv.DictReader((out / "per_film.csv").open()))
    assert {r["set"] for r in rows} == {"covid_lungmasks", "lungmasks_v7"}
    assert {r["reference"] for r in rows} == {"mask", "empty"}
    for word in ("covid_lungmasks/frontal", "inter-annotator", "not scored: empty reference"):
        assert word in result.output


def test_shipped_card_names_its_views_and_sets() -> None:
    from cxrkit.segment import load_lung_model

    card = load_lung_model().card
    # lateral masks are empty: no lateral claim
    assert card.screening.views_declared and card.views == ("frontal",)
    training = card.provenance.training
    data = training["data"]
    assert [d["name"] for d in data] == ["covid_lungmasks", "lungmasks_v7"]
    assert all(len(d["labels_sha256"]) == 64 for d in data)
    members = training.get("members") or [{"training": training}]
    assert all(m["training"]["config"]["train_views"] == ["frontal"] for m in members)
    assert "/" not in json.dumps(data)  # named by folder and hash, never a local path
    test = card.metrics["test"]
    assert set(test["set_view"]) >= {"covid_lungmasks/frontal", "lungmasks_v7/frontal"}


def test_lateral_support_is_claimed_only_from_validation() -> None:
    from cxrkit.segment.train import SegTrainConfig, _supported_views

    def val(d: float) -> dict:
        return {"groups": {"view": {"lateral": {"dice": {"mean": d}}}}}

    both = SegTrainConfig(train_views=("frontal", "lateral"))
    assert _supported_views(both, val(0.9)) == ["frontal", "lateral"]
    assert _supported_views(both, val(0.7)) == ["frontal"]
    assert _supported_views(both, {"groups": {"view": {}}}) == ["frontal"]
    assert _supported_views(SegTrainConfig(train_views=("frontal",)), val(0.9)) == ["frontal"]


def test_balanced_sets_weigh_each_annotator_the_same() -> None:
    from cxrkit.segment.train import _set_balanced_weights, val_score

    sets = ["a", "a", "a", "b"]
    weights = _set_balanced_weights(sets)
    assert weights[:3].sum().item() == pytest.approx(1.0) and weights[3].item() == 1.0
    scores = [0.9, 0.9, 0.9, 0.5]
    assert val_score(scores, sets, balance_sets=False) == pytest.approx(0.8)
    assert val_score(scores, sets, balance_sets=True) == pytest.approx(0.7)  # (0.9 + 0.5) / 2


def test_train_on_two_annotators_writes_one_split(tmp_path: Path) -> None:
    import torch

    torch.set_num_threads(1)
    a = synthetic_annotator(tmp_path / "annot_a", 10, 0)
    b = synthetic_annotator(tmp_path / "annot_b", 10, 1, empty=3)
    run = tmp_path / "run"
    args = ["segment", "train", "--data", a, "--data", b, "--out", run, "--epochs", "1"]
    args += ["--size", "64", "--val", "0.2", "--test", "0.2", "--threads", "1", "--balance-sets"]
    result = runner.invoke(app, [str(x) for x in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    rows = list(csv.DictReader((run / "split.csv").open()))
    assert len(rows) == 20 and {r["set"] for r in rows} == {"annot_a", "annot_b"}
    side: dict[str, set[str]] = {}
    for r in rows:
        side.setdefault(r["patient_id"], set()).add(r["split"])
    assert all(len(s) == 1 for s in side.values())  # both masks of a film on one side
    from cxrkit.segment.model import read_lung_card

    card = read_lung_card(run / "model.safetensors")
    training = card.provenance.training
    films = training["films"]
    n_train = films["train"]["films"]
    empty_in_train = side["p3"] == {"train"}
    assert training["n_train"] == n_train - (1 if empty_in_train else 0)
    assert card.screening.views_declared and card.views == ("frontal",)
    assert training["config"]["balance_sets"] is True
    assert [d["name"] for d in training["data"]] == ["annot_a", "annot_b"]
    test = json.loads((run / "test" / "metrics.json").read_text())
    assert set(test["groups"]["set"]) == {"annot_a", "annot_b"}
    assert test["annotators"]["n"] == 0 or "inter_annotator" in test["annotators"]
    again = tmp_path / "again"
    args = ["segment", "train", "--data", a, "--out", again, "--init", run / "model.safetensors"]
    args += ["--epochs", "1", "--size", "64", "--val", "0.2", "--test", "0.2", "--threads", "1"]
    args += ["--loss", "lovasz", "--ema", "0.9"]
    result = runner.invoke(app, [str(x) for x in args])
    assert result.exit_code == 0, result.output + repr(result.exception)
    config = read_lung_card(again / "model.safetensors").provenance.training["config"]
    assert config["init"] == "model.safetensors"  # the file's name, never a local path
    assert (config["loss"], config["ema_decay"]) == ("lovasz", 0.9)
