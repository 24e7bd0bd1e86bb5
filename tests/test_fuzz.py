"""Seeded fuzzing (issue 11): mutated PNG, JPEG and DICOM films through the reader, the
dataset loader, `cxr predict` and `POST /v1/predict`. No crash, no hang, no bad film, no
label without finite probabilities, no 5xx. benchmarks/fuzz.py runs the same engine at
>= 10,000 cases."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from cxrkit.classifier.dataset import CXRDataset
from cxrkit.data.table import LabelTable, Record
from fuzz_runner import run_cases
from fuzzing import Case, Seed, make_case, quiet_pydicom, sample_seeds, synthetic_seeds

MASTER_SEED = 11
CXR = Path(sys.executable).with_name("cxr")


@pytest.fixture(scope="module")
def seeds(samples_dir: Path) -> list[Seed]:
    quiet_pydicom()
    return synthetic_seeds() + sample_seeds(samples_dir)


def _cases(seeds: list[Seed], start: int, n: int) -> list[Case]:
    return [make_case(seeds, i, MASTER_SEED) for i in range(start, start + n)]


@pytest.fixture(scope="module")
def case_files(seeds: list[Seed], tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """80 fuzz cases written as files (for the loader, `cxr predict` and the server)."""
    folder = tmp_path_factory.mktemp("fuzz")
    paths = []
    for case in _cases(seeds, 10_000, 80):
        path = folder / case.name
        path.write_bytes(case.data)
        paths.append(path)
    return paths


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serve_helpers import save_random_model

    return save_random_model(tmp_path_factory.mktemp("fuzz-model") / "model.safetensors")


def test_seeds_cover_every_kind_of_film(seeds: list[Seed]) -> None:
    names = {s.name for s in seeds}
    assert {"png8", "png16", "jpeg", "dcm_native8", "dcm_native16", "dcm_mono1_window"} <= names
    assert {"dcm_rle8", "dcm_rle16", "dcm_j2k", "dcm_jpeg_baseline"} <= names
    assert {s.kind for s in seeds if s.name.startswith("real_")} == {"png", "jpeg", "dicom"}


def test_cases_are_reproducible(seeds: list[Seed]) -> None:
    assert make_case(seeds, 5, MASTER_SEED) == make_case(seeds, 5, MASTER_SEED)
    assert make_case(seeds, 5, MASTER_SEED).data != make_case(seeds, 6, MASTER_SEED).data


def test_read_image_survives_400_mutated_films(seeds: list[Seed]) -> None:
    tally = run_cases(_cases(seeds, 0, 400), workers=2, timeout_s=20.0).as_dict()
    assert tally["cases"] == 400
    assert (tally["crash"], tally["hang"], tally["bad_film"]) == (0, 0, 0), tally["examples"]
    assert tally["ok"] > 40 and tally["clean_error"] > 40  # the mutations reach both sides


def _assert_film_tensor(image: torch.Tensor) -> None:
    assert image.dtype == torch.float32 and torch.isfinite(image).all()
    assert float(image.min()) >= 0.0 and float(image.max()) <= 1.0


def test_dataset_loader_skips_or_gives_good_films(case_files: list[Path]) -> None:
    records = [Record(path, ("normal",), f"p{i}") for i, path in enumerate(case_files)]
    table = LabelTable(case_files[0].parent, records, ["normal", "pneumonia"], "binary", "label")
    dataset = CXRDataset(table, size=64)
    items = [dataset[i] for i in range(len(dataset))]
    good = [item for item in items if item is not None]
    for item in good:
        _assert_film_tensor(item["image"])
    assert len(good) + len(dataset.bad_files) == len(case_files)
    assert all("\n" not in reason for _path, reason in dataset.bad_files)


def _finite_row(row: dict) -> bool:
    probs = row.get("probabilities")
    return (
        row.get("label") is not None
        and isinstance(probs, dict)
        and all(isinstance(v, float) and math.isfinite(v) and 0 <= v <= 1 for v in probs.values())
    )


def test_cxr_predict_gives_an_error_or_a_finite_row(
    case_files: list[Path], model_file: Path, tmp_path: Path
) -> None:
    out = tmp_path / "preds.json"
    run = subprocess.run(
        [str(CXR), "predict", str(model_file), *map(str, case_files), "--out", str(out)]
        + ["--num-workers", "2", "--device", "cpu"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert run.returncode == 0, run.stderr
    assert "Traceback" not in run.stderr and "panicked" not in run.stderr, run.stderr
    rows = json.loads(out.read_text())
    assert len(rows) == len(case_files)
    for row in rows:
        assert ("error" in row) != _finite_row(row), row
        if "error" in row:
            assert row.get("label") is None and "\n" not in row["error"]


def test_cxr_data_info_gives_one_line_per_bad_file(case_files: list[Path]) -> None:
    files = case_files[:40]
    run = subprocess.run(
        [str(CXR), "data", "info", "--json", *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    rows = json.loads(run.stdout)
    bad = [r for r in rows if not r["ok"]]
    assert run.returncode == (2 if bad else 0), run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == len(bad) and all(line.startswith("error: ") for line in lines), lines
    assert "Traceback" not in run.stderr and "panicked" not in run.stderr


@pytest.fixture(scope="module")
def client(model_file: Path) -> Iterator[object]:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient

    from cxrkit.serve import ServeSettings, create_app

    # rate limit off: this test posts its cases back to back from one client
    settings = ServeSettings(token=None, decode_workers=2, decode_timeout_s=20.0, rate_limit=0)
    with TestClient(create_app(model_file, settings=settings)) as c:
        yield c


def test_server_answers_4xx_or_a_finite_prediction(client: object, case_files: list[Path]) -> None:
    statuses = []
    for path in case_files:
        response = client.post(  # type: ignore[attr-defined]
            "/v1/predict",
            files={"file": (path.name, path.read_bytes(), "application/octet-stream")},
        )
        statuses.append(response.status_code)
        assert response.status_code < 500, response.text
        body = response.json()
        if response.status_code == 200:
            assert _finite_row(body), body
        else:
            assert "label" not in body and body["detail"].startswith(path.name)
    assert 200 in statuses and any(400 <= s < 500 for s in statuses)
    pool = client.app.state.predictor.decode_pool  # type: ignore[attr-defined]
    assert pool.stats.as_dict()["decodes"] > 0  # the uploads went through the worker pool


def test_fuzz_film_arrays_are_contract_films(seeds: list[Seed]) -> None:
    """The in-process path too (no worker): every ok film is a contract film."""
    from fuzz_outcomes import classify_read

    outcomes = [classify_read(c.data, c.name)["outcome"] for c in _cases(seeds, 20_000, 60)]
    assert set(outcomes) <= {"ok", "clean_error"}, outcomes
    assert np.isin(["ok", "clean_error"], outcomes).all()


def test_tally_counts_every_outcome_with_examples() -> None:
    from fuzz_outcomes import Tally

    tally = Tally()
    tally.add(Case(0, "s", "png", "m", b"x"), "hang", "no answer")
    tally.add(Case(1, "s", "png", "m", b"x"), "ok", "")
    summary = tally.as_dict()
    assert (summary["cases"], summary["hang"], summary["ok"], summary["crash"]) == (2, 1, 1, 0)
    assert summary["examples"]["hang"][0].startswith("case 0 (s; m)")


# --- new targets (issue 28): mask PNGs, model cards, a three-class card's decision ----------


def _target_outcomes(target: str, n: int, start: int = 0) -> list[dict[str, str]]:
    from fuzz_targets import classify_target, make_target_case, seeds_for

    seeds = seeds_for(target)
    cases = [make_target_case(target, seeds, i, MASTER_SEED) for i in range(start, start + n)]
    return [classify_target(target, c.data, c.name) for c in cases]


def test_target_cases_are_reproducible_and_seeds_valid() -> None:
    from cxrkit.card import ModelCard
    from fuzz_targets import CARDS, NEW_TARGETS, card_problem, make_target_case, seeds_for

    for target in NEW_TARGETS:
        seeds = seeds_for(target)
        one = make_target_case(target, seeds, 7, MASTER_SEED)
        assert one == make_target_case(target, seeds, 7, MASTER_SEED)
        assert one.target == target
    for card in CARDS:  # every seed card is valid and reads back as itself
        assert card_problem(ModelCard.from_dict(card)) is None
    assert {ModelCard.from_dict(c).task for c in CARDS} == {"binary", "multiclass", "multilabel"}


def test_runner_runs_every_target_in_workers() -> None:
    """The killable-worker runner dispatches each case to its target's reader."""
    from fuzz_targets import NEW_TARGETS, make_target_case, seeds_for

    cases = [
        make_target_case(t, seeds_for(t), i, MASTER_SEED) for t in NEW_TARGETS for i in range(20)
    ]
    tally = run_cases(cases, workers=2, timeout_s=20.0).as_dict()
    assert tally["cases"] == 60 and tally["hang"] == 0
    assert tally["ok"] > 0 and tally["ok"] + tally["clean_error"] > 20


def test_decision_row_labels_only_good_rows() -> None:
    """`Decision.row` (what `cxr predict` and the server report) on 300 fuzzed rows of a
    three-class card: a label only for 3 finite numbers in [0, 1], else an error row."""
    outcomes = _target_outcomes("decision", 300)
    row_faults = [o for o in outcomes if o["detail"].startswith("row()")]
    assert not row_faults, row_faults[:5]
    assert not [o for o in outcomes if o["outcome"] in ("crash", "hang")]
    assert sum(o["outcome"] == "ok" for o in outcomes) > 50  # good rows are reached too


def test_card_decide_labels_only_good_rows() -> None:
    """Found by the fuzzer, fixed: `ModelCard.decide` / `Decision.labels` raise on NaN,
    inf, out-of-range or misshapen rows instead of deciding them."""
    outcomes = _target_outcomes("decision", 300)
    assert {o["outcome"] for o in outcomes} <= {"ok", "clean_error"}, outcomes


def test_fuzzed_cards_are_card_errors_or_valid_cards() -> None:
    """Found by the fuzzer, fixed: `ModelCard.from_dict` gives a `CardError` naming the
    field for a non-object section, NaN preprocessing numbers or a null `resize_mode`;
    every card it accepts reads back as itself."""
    outcomes = _target_outcomes("card", 300)
    assert {o["outcome"] for o in outcomes} <= {"ok", "clean_error"}, [
        o for o in outcomes if o["outcome"] not in ("ok", "clean_error")
    ][:5]


def test_fuzzed_cards_mostly_give_card_errors() -> None:
    """What holds today: the bulk of fuzzed cards are refused with a one-line CardError
    naming the source, or accepted as a valid card; no hang."""
    outcomes = _target_outcomes("card", 300)
    clean = sum(o["outcome"] == "clean_error" for o in outcomes)
    ok = sum(o["outcome"] == "ok" for o in outcomes)
    assert clean > 100 and ok > 30
    assert clean + ok >= 290, [o for o in outcomes if o["outcome"] not in ("ok", "clean_error")]


def test_mask_reader_gives_a_mask_or_a_clean_error() -> None:
    """Found by the fuzzer, fixed: `read_mask` turns PIL's errors into an `ImageReadError`
    naming the mask."""
    outcomes = _target_outcomes("mask", 200)
    assert {o["outcome"] for o in outcomes} <= {"ok", "clean_error"}


def test_mask_reader_never_gives_a_bad_mask() -> None:
    """Whatever `read_mask` returns for a fuzzed mask PNG is a 2-D bool mask of the asked
    shape (never a wrong mask); its errors are tallied by the test above."""
    outcomes = _target_outcomes("mask", 200)
    assert not [o for o in outcomes if o["outcome"] in ("bad_film", "hang")]
    assert sum(o["outcome"] == "ok" for o in outcomes) > 30
