"""A set the model card lists as having chosen something is marked optimistic by `cxr evaluate`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from cxrkit.data.cache import file_sha256
from cxrkit.errors import CxrkitError
from site_helpers import run_cxr, tiny_model_file

NOTE = "used for selection: optimistic"


@pytest.fixture(scope="module")
def small_set(site_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 kermany_site films (8 per class) in a labels.csv of their own."""
    with (site_dir / "labels.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    rows = [r for r in rows if r["label"] == "normal"][:8] + [
        r for r in rows if r["label"] == "pneumonia"
    ][:8]
    folder = tmp_path_factory.mktemp("chooser") / "chooser"
    folder.mkdir()
    with (folder / "labels.csv").open("w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["path", "label", "patient_id"])
        w.writeheader()
        w.writerows(
            {"path": str(site_dir / r["path"]), "label": r["label"], "patient_id": r["patient_id"]}
            for r in rows
        )
    return folder


def _evaluate(model: Path, data: Path, out: Path) -> tuple[dict, str, str]:
    code, stdout, err = run_cxr(
        "evaluate", model, "--data", data, "--out", out, "--n-bootstrap", "0",
        "--num-workers", "0",
    )  # fmt: skip
    assert code == 0, err
    metrics = json.loads((out / "metrics.json").read_text())
    return metrics, (out / "report.html").read_text(), stdout + err


def test_the_flag_follows_the_card(small_set: Path, tmp_path: Path) -> None:
    fingerprint = file_sha256(small_set / "labels.csv")
    chose = [{"name": "chooser", "labels_sha256": fingerprint, "used_for": ["threshold method"]}]
    listed = tiny_model_file(tmp_path / "listed.safetensors", selection_sets=chose)
    metrics, html, printed = _evaluate(listed, small_set, tmp_path / "eval-listed")
    assert metrics["used_for_selection"] is True
    assert metrics["selection"]["used_for"] == ["threshold method"]
    assert NOTE in metrics["warnings"][0] and "threshold method" in metrics["warnings"][0]
    assert NOTE in html and NOTE in printed

    other = [{"name": "elsewhere", "labels_sha256": "0" * 64, "used_for": ["recipe"]}]
    for name, card_extra in (("unlisted", {"selection_sets": other}), ("plain", {})):
        model = tiny_model_file(tmp_path / f"{name}.safetensors", **card_extra)
        metrics, html, printed = _evaluate(model, small_set, tmp_path / f"eval-{name}")
        assert metrics["used_for_selection"] is False
        assert metrics["selection"]["labels_sha256"] == fingerprint
        assert NOTE not in html and NOTE not in printed


def test_training_names_its_selection_sets_by_the_same_fingerprint(small_set: Path) -> None:
    from cxrkit.train import load_config
    from cxrkit.train.runner import selection_records

    cfg = load_config(None, {"selection_sets": {str(small_set): ["recipe", "head"]}})
    (record,) = selection_records(cfg)
    assert record == {
        "name": "chooser",
        "labels_sha256": file_sha256(small_set / "labels.csv"),
        "used_for": ["recipe", "head"],
    }
    with pytest.raises(CxrkitError, match="selection_sets"):
        load_config(None, {"selection_sets": {str(small_set): []}})
    with pytest.raises(CxrkitError, match="selection_sets"):
        selection_records(load_config(None, {"selection_sets": {"/no/such/set": "recipe"}}))
