"""Fuzzed DICOM films in a real Orthanc through `cxr pacs run`'s loop (issue 28): a CI-size
run of benchmarks/pacs_fuzz.py (which runs 10,000 cases). No loop crash, no hang, no
non-finite output, no duplicate SR, and every stored film gets an outcome."""

from __future__ import annotations

import sys
from pathlib import Path

import pydicom
import pytest

from pacs_helpers import ORTHANC_INSTALL, find_orthanc, run_orthanc
from serve_helpers import save_random_model
from tools import missing_tool

pytest.importorskip("highdicom", reason="the 'dicom' extra (highdicom) is not installed")
pytest.importorskip(
    "dicomweb_client", reason="the 'dicom' extra (dicomweb-client) is not installed"
)

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
CASES, MASTER_SEED = 40, 28


def _bench():
    sys.path.insert(0, str(BENCH))
    try:
        import pacs_fuzz
    finally:
        sys.path.remove(str(BENCH))
    return pacs_fuzz


def test_film_cases_are_reproducible_with_their_own_identity(samples_dir: Path) -> None:
    import io

    pf = _bench()
    seeds = pf.dicom_seeds(samples_dir)
    assert {"dcm_native8", "dcm_rle16", "dcm_j2k", "dcm_jpeg_baseline"} <= {s.name for s in seeds}
    with pf.hostile_writes():
        cases = [pf.make_film_case(seeds, i, MASTER_SEED) for i in range(30)]
        assert pf.make_film_case(seeds, 7, MASTER_SEED).data == cases[7].data
    assert len({c.sop for c in cases}) == 30 and len({c.series for c in cases}) == 30
    assert len({c.study for c in cases}) == 30 // pf.FILMS_PER_STUDY
    assert {c.modality for c in cases} == {"CR", "DX"}
    for c in cases:
        if c.identity == "unparsed":
            continue
        with pf.hostile_writes():  # a cut file: pydicom warns, reads what is there
            ds = pydicom.dcmread(io.BytesIO(c.data), force=True)
        assert str(ds.SOPInstanceUID) == c.sop and str(ds.StudyInstanceUID) == c.study
        assert str(ds.SOPClassUID) == (pf.CR_CLASS if c.modality == "CR" else pf.DX_CLASS)
    assert len({c.mutation for c in cases}) > 10  # the fuzzer's mutations, not one


def test_fuzzed_films_through_the_pacs_loop(samples_dir: Path, tmp_path: Path) -> None:
    binary, plugin, why = find_orthanc()
    if plugin is None:
        missing_tool(why, ORTHANC_INSTALL)
    pf = _bench()
    model = save_random_model(tmp_path / "model.safetensors")
    folder = tmp_path / "orthanc"
    folder.mkdir()
    with run_orthanc(folder, binary, plugin) as orthanc:
        result = pf.campaign(
            orthanc, model, cases=CASES, seed=MASTER_SEED, batch=20, samples=samples_dir,
            stall_s=180, sr_sample=CASES, state=tmp_path / "state.sqlite",
            progress=lambda line: None,
        )  # fmt: skip
    o, uploads = result["outcomes"], result["uploads"]
    assert result["loop_crashes"] == 0, result["examples"]["loop_crashes"]
    assert result["hangs"] == 0
    assert result["non_finite_outputs"] == 0, result["examples"]["non_finite"]
    assert result["duplicate_srs"] == 0, result["examples"]["results"]
    assert o["no_outcome"] == 0 and o["retry_left"] == 0, result["examples"]
    assert uploads["stored"] + uploads["already_stored"] + uploads["refused_by_the_server"] == CASES
    stored = result["stored_films"]
    assert stored == uploads["stored"] > 0
    assert stored == o["done"] + o["failed"] + o["quarantined"] + o["not_listed"]
    assert o["done"] > 0 and o["failed"] > 0  # films that pass and films that fail
    on_server = result["results_on_server"]
    assert on_server["srs_on_server"] == on_server["overlays_on_server"] == o["done"]
    assert on_server["missing_srs"] == on_server["orphan_srs"] == 0
    assert result["srs_read_back"] == {
        "read": o["done"], "non_finite": 0, "mismatch": 0, "unreadable": 0,
    }  # fmt: skip
    assert result["rows"]["predicted"] >= o["done"] and result["rows"]["non_finite"] == 0
    assert pf.problems(result) == 0
