"""`cxr pacs run` under faults, against a real Orthanc started by each test.

Faults: the server restarted mid-run; a film that hangs the decoder and one that crashes
it; a server whose QIDO answers are capped at 100 results (and one that ignores
`offset`); 5xx answers, one of them after the server had stored the results; a SIGKILL of
`cxr pacs run` between fetch and store (and right after a STOW), then reruns; a film that
kills the whole process each time it is tried. Each must end with every film processed
exactly once or reported, and no film with two SRs. With `CXR_PACS_FAULTS_OUT=FILE` each
test appends its fault and outcome to FILE as a JSON line (`benchmarks/pacs_faults.py`
turns them into `benchmarks/results/pacs_faults.json`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pydicom
import pytest
import requests
from typer.testing import CliRunner

from cxrkit.cli.app import app
from pacs_helpers import (
    ORTHANC_INSTALL,
    PASSWORD,
    USER,
    FaultProxy,
    Orthanc,
    find_orthanc,
    run_orthanc,
)
from serve_helpers import save_random_model
from tools import missing_tool

pytest.importorskip("highdicom", reason="the 'dicom' extra (highdicom) is not installed")
pytest.importorskip(
    "dicomweb_client", reason="the 'dicom' extra (dicomweb-client) is not installed"
)

TESTS = Path(__file__).resolve().parent
ENV = {"CXR_PACS_USER": USER, "CXR_PACS_PASSWORD": PASSWORD, "COLUMNS": "300"}
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
HARNESS = TESTS / "pacs_fault_harness.py"


def _record(fault: str, outcome: str, **details: Any) -> None:
    """Append this test's fault and outcome to $CXR_PACS_FAULTS_OUT (when set)."""
    out = os.environ.get("CXR_PACS_FAULTS_OUT")
    if out:
        test = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].split(" ")[0]
        with open(out, "a", encoding="utf-8") as fh:
            line = {"test": test, "fault": fault, "outcome": outcome, **details}
            fh.write(json.dumps(line, sort_keys=True) + "\n")


@pytest.fixture
def orthanc(tmp_path: Path):
    binary, plugin, why = find_orthanc()
    if plugin is None:
        missing_tool(why, ORTHANC_INSTALL)
    folder = tmp_path / "orthanc"
    folder.mkdir()
    with run_orthanc(folder, binary, plugin) as server:
        yield server


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_random_model(tmp_path_factory.mktemp("pacs-model") / "model.safetensors")


def _film(kermany_dir: Path, k: int, folder: Path, comment: str | None = None) -> pydicom.Dataset:
    """A 128 px DX film made from a shared PNG, alone in its study (a marker in its comments)."""
    from dicom_factory import make_dataset, png_pixels, save

    png = sorted((kermany_dir / "images").glob("*.png"))[k]
    extra = {"ImageComments": comment} if comment else {}
    ds = make_dataset(
        png_pixels(png, size=128), modality="DX", StudyInstanceUID=pydicom.uid.generate_uid(),
        SeriesInstanceUID=pydicom.uid.generate_uid(), PatientID=f"F{k}", StudyDate="20240105",
        **extra,
    )  # fmt: skip
    save(ds, folder / f"film{k}.dcm")
    return ds


def _upload(orthanc: Orthanc, films: list[pydicom.Dataset], folder: Path) -> None:
    for k, ds in enumerate(films):
        path = folder / f"upload{k}.dcm"
        ds.save_as(path, enforce_file_format=True)
        orthanc.upload(path)


def _pacs(model: Path, url: str, state: Path, *extra: str) -> Any:
    args = ["pacs", "run", str(model), "--url", url, "--state", str(state), *extra]
    return CliRunner().invoke(app, args, env=ENV)


def _harness(
    model: Path, url: str, state: Path, kill: str, nth: int = 1, *extra: str
) -> subprocess.CompletedProcess[str]:
    """`cxr pacs run` in a child process that SIGKILLs itself at `kill` (pacs_fault_harness)."""
    env = {**os.environ, **ENV, "CXR_TEST_PACS_KILL": kill, "CXR_TEST_PACS_KILL_NTH": str(nth)}
    args = ["pacs", "run", str(model), "--url", url, "--state", str(state), *extra]
    return subprocess.run(
        [sys.executable, str(HARNESS), *args],
        capture_output=True, text=True, timeout=300, env=env, cwd=TESTS.parent,
    )  # fmt: skip


def _results(orthanc: Orthanc, study: str) -> tuple[int, int]:
    """(SRs, overlays) the server holds in `study`."""
    counts = []
    for search in ({"Modality": "SR"}, {"SOPClassUID": SC_CLASS}):
        r = requests.get(
            f"{orthanc.dicomweb}/studies/{study}/instances",
            params=search, auth=(USER, PASSWORD), timeout=30,
        )  # fmt: skip
        r.raise_for_status()
        counts.append(len(r.json()))
    return counts[0], counts[1]


def _once_each(orthanc: Orthanc, films: list[pydicom.Dataset]) -> dict[str, tuple[int, int]]:
    return {ds.SOPInstanceUID: _results(orthanc, ds.StudyInstanceUID) for ds in films}


def _state(path: Path) -> dict[str, tuple[str, int]]:
    from cxrkit.pacs import ProcessedStore

    store = ProcessedStore(path)
    try:
        return {e.sop: (e.status, e.tries) for e in store.entries()}
    finally:
        store.close()


def _http_retries(output: str) -> int:
    found = re.search(r"HTTP retries (\d+)", output)
    return int(found.group(1)) if found else 0


def test_server_restarted_mid_run(
    orthanc: Orthanc, model: Path, kermany_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Orthanc stops before the second WADO-RS and is back 1.5 s later: the retries with
    backoff ride it out, every film gets its results once."""
    from cxrkit.pacs.client import PacsClient

    films = [_film(kermany_dir, k, tmp_path) for k in range(3)]
    _upload(orthanc, films, tmp_path)
    retrieve, calls, timers = PacsClient.retrieve, [0], []

    def restarting(self: PacsClient, study: str, series: str, sop: str) -> Any:
        calls[0] += 1
        if calls[0] == 2:
            orthanc.stop()
            timers.append(threading.Timer(1.5, orthanc.start))
            timers[-1].start()
        return retrieve(self, study, series, sop)

    monkeypatch.setattr(PacsClient, "retrieve", restarting)
    start = time.monotonic()
    result = _pacs(model, orthanc.dicomweb, tmp_path / "state.sqlite")
    for timer in timers:
        timer.join()
    assert result.exit_code == 0, result.output
    assert "WADO-RS: ConnectionError" in result.output and "retrying in" in result.output
    assert "3 films found, 3 new; processed 3, failed 0, stored 6 object(s)" in result.output
    assert set(_once_each(orthanc, films).values()) == {(1, 1)}
    assert orthanc.count_instances() == 9
    assert {s for s, _ in _state(tmp_path / "state.sqlite").values()} == {"done"}
    _record(
        "PACS server restarted mid-run (stopped before the 2nd WADO-RS, back 1.5 s later)",
        "3 of 3 films done, one SR + one overlay each; "
        f"{_http_retries(result.output)} requests retried with backoff",
        films=3, seconds=round(time.monotonic() - start, 1),
    )  # fmt: skip


def test_films_that_hang_or_crash_the_decoder(
    orthanc: Orthanc, model: Path, kermany_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    """Both are given up (timeout / SIGSEGV in the decode worker, which is replaced), the
    other films go on; tried again on the next pass, then quarantined; --retry-failed
    tries them once more."""
    from cxrkit.io.pool import DecodePool

    worker = [sys.executable, str(TESTS / "pacs_fault_worker.py")]

    def make_pool(timeout_s: float = 20.0, memory_mb: int = 2048) -> DecodePool:
        return DecodePool(1, memory_mb=memory_mb, timeout_s=timeout_s, worker_argv=worker)

    monkeypatch.setattr("cxrkit.pacs.run.make_pool", make_pool)
    films = [
        _film(kermany_dir, 0, tmp_path),
        _film(kermany_dir, 1, tmp_path, "CXR-FAULT-HANG"),
        _film(kermany_dir, 2, tmp_path, "CXR-FAULT-SEGV"),
        _film(kermany_dir, 3, tmp_path),
    ]
    hang, segv = films[1].SOPInstanceUID, films[2].SOPInstanceUID
    _upload(orthanc, films, tmp_path)
    state = tmp_path / "state.sqlite"
    flags = ("--decode-timeout", "2", "--max-tries", "2")
    start = time.monotonic()

    first = _pacs(model, orthanc.dicomweb, state, *flags)
    assert first.exit_code == 0, first.output
    assert f"skipped {hang}: unreadable film: decoding took longer than 2 s" in first.output
    crashed = "unreadable film: the decoder crashed on this file (killed by SIGSEGV)"
    assert f"skipped {segv}: {crashed}" in first.output
    assert first.output.count("(try 1 of 2; tried again next pass)") == 2
    assert "4 films found, 4 new; processed 2, failed 2, stored 4 object(s)" in first.output

    second = _pacs(model, orthanc.dicomweb, state, *flags)
    assert second.exit_code == 0, second.output
    assert "0 new, 2 to try again; processed 0, failed 2, stored 0 object(s), quarantined 2" in (
        second.output
    )
    assert second.output.count("(try 2 of 2: quarantined)") == 2

    third = _pacs(model, orthanc.dicomweb, state, *flags)
    assert third.exit_code == 0, third.output
    assert "4 films found, 0 new; processed 0, failed 0" in third.output  # not fetched again
    assert _state(state)[hang] == ("quarantined", 2) and _state(state)[segv][0] == "quarantined"

    again = _pacs(model, orthanc.dicomweb, state, *flags, "--retry-failed")
    assert again.exit_code == 0, again.output
    assert "0 new, 2 to try again; processed 0, failed 2" in again.output
    assert again.output.count("(try 1 of 2; tried again next pass)") == 2  # count reset
    results = _once_each(orthanc, films)
    assert results[films[0].SOPInstanceUID] == results[films[3].SOPInstanceUID] == (1, 1)
    assert results[hang] == results[segv] == (0, 0) and orthanc.count_instances() == 8
    seconds = round(time.monotonic() - start, 1)
    _record(
        "film that hangs the decoder (decode timeout 2 s, --max-tries 2)",
        "given up after 2 s per try (worker killed and replaced), other films done; "
        "tried on the next pass, then quarantined and no longer fetched; "
        "--retry-failed reset its count",
        passes=4, seconds=seconds,
    )  # fmt: skip
    _record(
        "film that crashes the decoder (SIGSEGV in the decode worker, --max-tries 2)",
        "reported 'killed by SIGSEGV' (worker replaced), other films done; "
        "quarantined after 2 tries; --retry-failed reset its count",
        passes=4, seconds=seconds,
    )  # fmt: skip


def test_qido_capped_at_100_results_and_offset_ignored(
    orthanc: Orthanc, model: Path, tmp_path: Path
) -> None:
    """130 films behind a proxy that answers at most 100 results per QIDO-RS request: all
    130 are listed (paged by offset); a server that ignores `offset` stops with a warning."""
    import io

    import numpy as np

    from dicom_factory import make_dataset

    study, series = pydicom.uid.generate_uid(), pydicom.uid.generate_uid()
    for k in range(130):
        ds = make_dataset(
            np.full((32, 32), k, np.uint8), modality="DX", StudyInstanceUID=study,
            SeriesInstanceUID=series, StudyDate="20240105", InstanceNumber=k + 1,
        )  # fmt: skip
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        orthanc.upload_bytes(buffer.getvalue())
    state = tmp_path / "state.sqlite"
    with FaultProxy(orthanc.base) as proxy:
        proxy.qido_cap = 100
        capped = _pacs(model, proxy.dicomweb, state, "--dry-run", "--modality", "DX")
        assert capped.exit_code == 0, capped.output
        assert "130 films found, 130 new; would process 130" in capped.output
        assert proxy.searches == 3  # 100, 30, then an empty page
        proxy.ignore_offset, proxy.searches = True, 0
        deaf = _pacs(model, proxy.dicomweb, state, "--dry-run", "--modality", "DX")
        assert deaf.exit_code == 0, deaf.output
        assert "may ignore 'offset'" in deaf.output and "100 films found" in deaf.output
        assert proxy.searches == 2  # the same page twice, then it stops
    _record(
        "QIDO-RS capped at 100 results per answer (130 films on the server)",
        "all 130 listed in 3 requests (paged by offset until an empty page); a server "
        "that ignores offset: 100 listed, stopped after 2 requests with a warning",
        films=130,
    )  # fmt: skip


def test_5xx_answers_are_retried_and_a_repeated_stow_stores_one_sr(
    orthanc: Orthanc, model: Path, kermany_dir: Path, tmp_path: Path
) -> None:
    """The first request gets 503; the first STOW-RS reaches Orthanc, which stores the
    results, and its answer is replaced by 502: the STOW is retried, the film has one SR."""
    films = [_film(kermany_dir, k, tmp_path) for k in range(2)]
    _upload(orthanc, films, tmp_path)
    with FaultProxy(orthanc.base) as proxy:
        proxy.fail_next, proxy.stow_lost_answers = 1, 1
        result = _pacs(model, proxy.dicomweb, tmp_path / "state.sqlite")
    assert result.exit_code == 0, result.output
    assert "QIDO-RS: HTTPError: 503" in result.output
    assert "STOW-RS: HTTPError: 502" in result.output
    assert "2 films found, 2 new; processed 2, failed 0, stored 4 object(s)" in result.output
    assert set(_once_each(orthanc, films).values()) == {(1, 1)}
    assert orthanc.count_instances() == 6
    _record(
        "HTTP 503 on a QIDO-RS; HTTP 502 after a STOW-RS the server had stored",
        "both retried with backoff; 2 of 2 films done, one SR + one overlay each "
        "(the repeated STOW carries the same stable UIDs: no duplicate)",
        films=2, http_retries=_http_retries(result.output),
    )  # fmt: skip


def test_kill_between_fetch_and_store_then_rerun(
    orthanc: Orthanc, model: Path, kermany_dir: Path, tmp_path: Path
) -> None:
    """SIGKILL right after the 2nd film's STOW (results stored, state not updated), then
    a rerun killed just before its first STOW, then a plain rerun: every film done once."""
    films = [_film(kermany_dir, k, tmp_path) for k in range(3)]
    _upload(orthanc, films, tmp_path)
    state = tmp_path / "state.sqlite"
    start = time.monotonic()

    killed = _harness(model, orthanc.dicomweb, state, "after-store", 2)
    assert killed.returncode == -9, killed.stderr
    rows = _state(state)
    assert sorted(s for s, _ in rows.values()) == ["done", "in_progress"]  # 3rd never begun
    stored_uncounted = next(sop for sop, (s, _) in rows.items() if s == "in_progress")
    assert orthanc.count_instances() == 3 + 4

    killed_again = _harness(model, orthanc.dicomweb, state, "before-store", 1)
    assert killed_again.returncode == -9, killed_again.stderr
    assert f"results of {stored_uncounted} were already in study" in killed_again.stderr
    assert orthanc.count_instances() == 3 + 4  # the 3rd film's STOW never went out

    rerun = _pacs(model, orthanc.dicomweb, state)
    assert rerun.exit_code == 0, rerun.output
    assert "3 films found, 0 new, 1 to try again; processed 1, failed 0, stored 2" in (rerun.output)
    assert set(_once_each(orthanc, films).values()) == {(1, 1)}
    assert orthanc.count_instances() == 3 + 6
    rows = _state(state)
    assert {s for s, _ in rows.values()} == {"done"} and sorted(t for _, t in rows.values()) == [
        1, 2, 2,
    ]  # fmt: skip
    final = _pacs(model, orthanc.dicomweb, state)
    assert "3 films found, 0 new; processed 0" in final.output
    _record(
        "SIGKILL of cxr pacs run right after a STOW-RS (stored, not yet recorded), then a "
        "rerun SIGKILLed just before its STOW-RS, then a plain rerun",
        "the stored film was found on the server (not fetched or stored again), the "
        "other resumed; 3 of 3 films done, exactly one SR + one overlay each",
        films=3, runs=4, seconds=round(time.monotonic() - start, 1),
    )  # fmt: skip


def test_a_film_that_kills_the_process_is_quarantined(
    orthanc: Orthanc, model: Path, kermany_dir: Path, tmp_path: Path
) -> None:
    """A film whose decode takes the whole process down (SIGKILL) is marked in progress
    before: each restart counts the try, and after --max-tries it is quarantined, unfetched."""
    good, poison = (
        _film(kermany_dir, 0, tmp_path),
        _film(kermany_dir, 1, tmp_path, "CXR-FAULT-KILL"),
    )
    _upload(orthanc, [good, poison], tmp_path)
    state = tmp_path / "state.sqlite"
    start = time.monotonic()
    for attempt in (1, 2):
        run = _harness(model, orthanc.dicomweb, state, "decode", 1, "--max-tries", "2")
        assert run.returncode == -9, run.stderr
        assert _state(state)[poison.SOPInstanceUID] == ("in_progress", attempt)
    last = _pacs(model, orthanc.dicomweb, state, "--max-tries", "2")
    assert last.exit_code == 0, last.output
    assert f"quarantined {poison.SOPInstanceUID}: the process stopped during decode (2 tries)" in (
        last.output
    )
    assert _state(state) == {
        good.SOPInstanceUID: ("done", 1),
        poison.SOPInstanceUID: ("quarantined", 2),
    }
    assert _once_each(orthanc, [good, poison]) == {
        good.SOPInstanceUID: (1, 1),
        poison.SOPInstanceUID: (0, 0),
    }
    _record(
        "film that kills the whole cxr pacs run process when decoded (SIGKILL, --max-tries 2)",
        "each restart counted the try (marked in progress before the decode); after 2 "
        "tries quarantined and not fetched again; the other film done once",
        films=2, runs=3, seconds=round(time.monotonic() - start, 1),
    )  # fmt: skip
