"""Fuzz the PACS loop: fuzzed DICOM films stored in a real Orthanc, then `cxr pacs run`'s
loop over them until every stored film has an outcome; tally.

    .venv/bin/python benchmarks/pacs_fuzz.py                    # 10,000 cases
    .venv/bin/python benchmarks/pacs_fuzz.py --cases 200 --out /tmp/pacs_fuzz.json

Films: the DICOM seeds of the film fuzz suite (tests/fuzz_seeds.py: native 8/16-bit,
MONOCHROME1, rescale + SIGMOID window, VOI LUT, RLE, JPEG 2000, JPEG baseline, and the
SIIM films of ../shared/data/samples), each given its own identity first (SOP Instance,
series and study UIDs, a CR or DX SOP class and Modality; three films a study), then
mutated by the film fuzzer (tests/fuzzing.py: DICOM tag changes, cut pixel data, byte
level mutations). When a mutation damaged the identity and the file still parses, the
identity is written back (the rest of the damage kept), so Orthanc can index it; files
that no longer parse go up as they are. Orthanc may refuse an upload: "refused by the
server", those films never reach the loop. Everything is seeded by (--seed, case index):
`make_film_case(dicom_seeds(samples), i, seed)` gives case i's bytes again.

The films go up in batches (--batch); after each batch the loop (`cxrkit.pacs.run_once`:
QIDO-RS for CR/DX, WADO-RS, decode in a killable worker with the default timeout and
memory cap, a random-init small CNN with a DicomResultWriter as `cxr pacs run` builds
it, STOW-RS of SR + overlay) runs pass after pass until a pass finds nothing to do. Then:

- outcomes of every stored film from the loop's state file: done / failed (with reason
  kinds) / quarantined / retry left / no outcome (a CR/DX film the loop never recorded);
- loop crashes: an exception out of `run_once` (the run goes on with the next pass);
- hangs: no film finished for --stall-timeout seconds (stacks dumped, the run stops);
- non-finite outputs: every row the loop predicted (a recording DicomResultWriter) and a
  seeded sample of stored SRs read back (WADO-RS, highdicom), all numbers finite and the
  probabilities in [0, 1] and equal to the row's;
- duplicate SRs: QIDO-RS of every SR and overlay on the server against the state's
  stable result UIDs (a source with a second SR; results of films without a `done`).

Exit status 1 if anything of that is not zero.
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import functools
import io
import json
import math
import os
import platform
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:
    sys.path.insert(0, str(TESTS))  # the fuzz engine and the Orthanc helpers live there

import numpy as np  # noqa: E402
import pydicom  # noqa: E402
import requests  # noqa: E402
from pydicom.dataset import FileMetaDataset  # noqa: E402
from pydicom.uid import generate_uid  # noqa: E402

from fuzzing import Seed, mutate, quiet_pydicom, sample_seeds, synthetic_seeds  # noqa: E402
from pacs_helpers import PASSWORD, USER, Orthanc, find_orthanc, run_orthanc  # noqa: E402

SHARED = Path(os.environ.get("CXR_SHARED", REPO.parent / "shared"))
OUT = REPO / "benchmarks" / "results" / "pacs_fuzz.json"
CR_CLASS, DX_CLASS = "1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1"
SC_CLASS = "1.2.840.10008.5.1.4.1.1.7"
UID_ROOT = "1.2.826.0.1.3680043.10.543.7"  # the results' root, as in the PACS tests
FILMS_PER_STUDY = 3
AUTH = (USER, PASSWORD)
PROBLEMS = ("loop_crashes", "hangs", "non_finite_outputs", "duplicate_srs", "no_outcome")


# ---- cases -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilmCase:
    """One fuzzed film: its seed, mutations, identity and bytes."""

    index: int
    seed: str
    mutation: str
    identity: str  # 'intact' | 'restored' (written back after the mutation) | 'unparsed'
    sop: str
    study: str
    series: str
    modality: str
    data: bytes


def dicom_seeds(samples: Path | None) -> list[Seed]:
    """The DICOM seeds of the film fuzz suite (synthetic ones and the shared samples)."""
    return [s for s in synthetic_seeds() + sample_seeds(samples) if s.kind == "dicom"]


def _uid(master: int, *parts: object) -> str:
    return str(generate_uid(entropy_srcs=["cxrkit-pacs-fuzz", str(master), *map(str, parts)]))


def _set_identity(ds: pydicom.Dataset, case: dict[str, str]) -> None:
    ds.SOPClassUID = CR_CLASS if case["modality"] == "CR" else DX_CLASS
    ds.SOPInstanceUID, ds.Modality = case["sop"], case["modality"]
    ds.StudyInstanceUID, ds.SeriesInstanceUID = case["study"], case["series"]
    ds.PatientID, ds.StudyDate = case["patient"], "20240105"
    meta = getattr(ds, "file_meta", None)
    if meta is None:
        meta = ds.file_meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = (
        ds.SOPClassUID,
        ds.SOPInstanceUID,
    )


def _has_identity(ds: pydicom.Dataset, case: dict[str, str]) -> bool:
    want = {
        "SOPInstanceUID": case["sop"], "StudyInstanceUID": case["study"],
        "SeriesInstanceUID": case["series"], "Modality": case["modality"],
        "SOPClassUID": CR_CLASS if case["modality"] == "CR" else DX_CLASS,
    }  # fmt: skip
    return all(str(ds.get(k, "")) == v for k, v in want.items())


def _with_identity(data: bytes, case: dict[str, str]) -> bytes:
    ds = pydicom.dcmread(io.BytesIO(data), force=True)
    _set_identity(ds, case)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


@contextlib.contextmanager
def hostile_writes() -> Iterator[None]:
    """pydicom reads and writes hostile values without validating or warning (for making
    cases); the loop runs outside, with pydicom's settings as `cxr pacs run` has them."""
    settings = pydicom.config.settings
    before = settings.reading_validation_mode, settings.writing_validation_mode
    settings.reading_validation_mode = settings.writing_validation_mode = pydicom.config.IGNORE
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        settings.reading_validation_mode, settings.writing_validation_mode = before


def make_film_case(seeds: list[Seed], index: int, master_seed: int = 0) -> FilmCase:
    """Case `index` of run `master_seed`: the same bytes every time (call it inside
    `hostile_writes()`, as the fuzz suite's cases are made)."""
    rng = np.random.default_rng([master_seed, index, 28])
    seed = seeds[int(rng.integers(len(seeds)))]
    study_no = index // FILMS_PER_STUDY
    ident = {
        "sop": _uid(master_seed, "sop", index),
        "series": _uid(master_seed, "series", index),
        "study": _uid(master_seed, "study", study_no),
        "patient": f"FUZZ{study_no:05d}",
        "modality": "CR" if rng.random() < 0.5 else "DX",
    }
    data, mutation = mutate(rng, Seed(seed.name, "dicom", _with_identity(seed.data, ident)))
    status = "intact"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
        if not _has_identity(ds, ident):
            _set_identity(ds, ident)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=False)
            data, status = buffer.getvalue(), "restored"
    except Exception:  # noqa: BLE001 - beyond repair: it goes up as it is
        status = "unparsed"
    return FilmCase(
        index, seed.name, mutation, status, ident["sop"], ident["study"], ident["series"],
        ident["modality"], data,
    )  # fmt: skip


# ---- the server --------------------------------------------------------------------------


def upload(session: requests.Session, base: str, data: bytes) -> tuple[str | None, str]:
    """POST one file to Orthanc: (its Orthanc ID or None, 'stored' | 'already stored' |
    'refused: <Orthanc's error>')."""
    r = session.post(f"{base}/instances", data=data, timeout=60)
    if r.status_code == 200:
        answer = r.json()
        status = "already stored" if answer.get("Status") == "AlreadyStored" else "stored"
        return str(answer["ID"]), status
    try:
        why = r.json().get("OrthancError") or r.json().get("Message") or ""
    except ValueError:
        why = r.text[:80]
    return None, f"refused: HTTP {r.status_code} {why}".strip()


def qido_all(session: requests.Session, dicomweb: str, filters: dict[str, str]) -> list[dict]:
    """Every instance a QIDO-RS search finds, paged by offset (de-duplicated by SOP UID)."""
    found: dict[str, dict] = {}
    offset = 0
    while True:
        params = {**filters, "limit": "1000", "offset": str(offset)}
        r = session.get(f"{dicomweb}/instances", params=params, timeout=120)
        r.raise_for_status()
        page = r.json()
        fresh = 0
        for item in page:
            sop = _value(item, "00080018")
            if sop and sop not in found:
                found[sop], fresh = item, fresh + 1
        if not page or not fresh:
            return list(found.values())
        offset += len(page)


def _value(item: dict, tag: str) -> str:
    return str((item.get(tag, {}).get("Value") or [""])[0])


def stored_films(session: requests.Session, base: str, ids: set[str]) -> dict[str, dict]:
    """Orthanc ID -> {'sop', 'modality'} of the stored films, as the server indexed them."""
    r = session.post(
        f"{base}/tools/find", json={"Level": "Instance", "Query": {}, "Expand": True}, timeout=600
    )
    r.raise_for_status()
    instances = {i["ID"]: i for i in r.json() if i["ID"] in ids}
    r = session.post(
        f"{base}/tools/find", json={"Level": "Series", "Query": {}, "Expand": True}, timeout=600
    )
    r.raise_for_status()
    modality = {s["ID"]: s.get("MainDicomTags", {}).get("Modality", "") for s in r.json()}
    return {
        oid: {
            "sop": i.get("MainDicomTags", {}).get("SOPInstanceUID", ""),
            "modality": modality.get(i.get("ParentSeries", ""), ""),
        }
        for oid, i in instances.items()
    }


def _orthanc_versions(base: str) -> dict[str, str | None]:
    try:
        r = requests.get(f"{base}/system", auth=AUTH, timeout=10)
        orthanc = r.json().get("Version")
    except (requests.RequestException, ValueError):
        orthanc = None
    try:
        done = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "orthanc-dicomweb"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        found = re.search(r"\d+\.\d+(\.\d+)?", done.stdout)
        plugin = found.group(0) if found else None
    except (OSError, subprocess.TimeoutExpired):
        plugin = None
    return {"orthanc": orthanc, "orthanc_dicomweb": plugin}


# ---- the loop ----------------------------------------------------------------------------


def recording_writer(model: Path) -> Any:
    """The DicomResultWriter of `cxr pacs run` (model on the CPU, `--uid-root`), recording
    each row it predicts and the row of each SR it builds."""
    from cxrkit.classifier import Classifier
    from cxrkit.dicom_out import DicomResultWriter

    class RecordingWriter(DicomResultWriter):
        def predict_image(self, image: Any, name: str) -> tuple[dict, Any]:
            row, heatmap = super().predict_image(image, name)
            self.rows += 1
            probs = row.get("probabilities")
            if "error" in row:
                self.error_rows[_kind(str(row["error"]))] += 1
            elif not _finite_probabilities(probs):
                self.bad_rows.append(f"row {probs!r}"[:200])
            if heatmap is not None and not np.isfinite(np.asarray(heatmap, float)).all():
                self.bad_rows.append("heat map with non-finite values")
            return row, heatmap

        def build(self, source: Any, row: dict, *args: Any, **kw: Any) -> Any:
            results = super().build(source, row, *args, **kw)
            self.built[str(source.SOPInstanceUID)] = dict(row.get("probabilities") or {})
            return results

    writer = RecordingWriter(Classifier.load(model, device="cpu"), uid_root=UID_ROOT)
    writer.rows, writer.error_rows, writer.bad_rows, writer.built = 0, Counter(), [], {}
    return writer


def _finite_probabilities(probs: Any) -> bool:
    if not isinstance(probs, dict) or not probs:
        return False
    values = [float(v) for v in probs.values()]
    return all(math.isfinite(v) and 0.0 <= v <= 1.0 for v in values)


def _kind(reason: str) -> str:
    """A failure's kind: its text with UIDs, numbers and paths blurred, cut short."""
    text = re.sub(r"\b\d+(\.\d+){3,}\b", "<uid>", reason)
    text = re.sub(r"/\S+", "<path>", text)
    text = re.sub(r"\b\d+(\.\d+)?\b", "N", text)
    return text[:110]


class Watchdog:
    """Calls `on_stall` when `beat()` was not called for `stall_s` seconds."""

    def __init__(self, stall_s: float, on_stall: Callable[[float], None]) -> None:
        self.stall_s, self.on_stall = stall_s, on_stall
        self.last = time.monotonic()
        self.longest = 0.0  # the longest time between two films' outcomes in a pass
        self.fresh = True  # the first line of a pass also waited for the listing: not a film
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def beat(self, in_pass: bool = True) -> None:
        now = time.monotonic()
        if in_pass and not self.fresh:
            self.longest = max(self.longest, now - self.last)
        self.fresh = not in_pass
        self.last = now

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            idle = time.monotonic() - self.last
            if idle > self.stall_s:
                self.on_stall(idle)
                return

    def __enter__(self) -> Watchdog:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


@dataclass
class Campaign:
    """Everything a run counts."""

    cases: int = 0
    identity: Counter = field(default_factory=Counter)
    uploads: Counter = field(default_factory=Counter)
    refused: Counter = field(default_factory=Counter)
    passes: int = 0
    loop_crashes: list[str] = field(default_factory=list)
    hangs: list[str] = field(default_factory=list)
    http_retries: int = 0
    log_lines: Counter = field(default_factory=Counter)
    pass_seconds: list[float] = field(default_factory=list)
    slowest_film_s: float = 0.0
    upload_seconds: float = 0.0
    by_case: dict[int, dict[str, Any]] = field(default_factory=dict)


def run_loop(
    pacs: Any,
    get_writer: Callable[[], Any],
    store: Any,
    pool: Any,
    camp: Campaign,
    watchdog: Watchdog,
    max_tries: int,
    max_passes: int = 10,
) -> None:
    """Passes of `run_once` until one finds nothing to do (at most `max_passes`)."""
    from cxrkit.pacs import run_once

    def log(line: str) -> None:
        watchdog.beat()
        word = line.split(" ", 1)[0]
        camp.log_lines["retrying" if "retrying in" in line else word] += 1

    for _ in range(max_passes):
        camp.passes += 1
        watchdog.beat(in_pass=False)
        start = time.perf_counter()
        try:
            summary = run_once(
                pacs, get_writer, store, modalities=["CR", "DX"], max_tries=max_tries,
                pool=pool, log=log,
            )  # fmt: skip
        except Exception as exc:  # noqa: BLE001 - a loop crash: counted, the next pass goes on
            import traceback

            camp.loop_crashes.append("".join(traceback.format_exception(exc))[-1500:])
            camp.pass_seconds.append(time.perf_counter() - start)
            continue
        camp.pass_seconds.append(time.perf_counter() - start)
        camp.http_retries += summary.retries
        if summary.new + summary.retried == 0:
            return


def read_back_srs(
    client: Any, entries: list[Any], built: dict[str, dict], sample: int, seed: int
) -> dict[str, Any]:
    """A seeded sample of the done films' SRs, fetched and read: every numeric value finite,
    probabilities in [0, 1] and equal to the row the loop predicted."""
    import highdicom as hd

    from cxrkit.pacs.uids import result_uids

    picked = random.Random(seed).sample(entries, min(sample, len(entries)))
    out = {"read": 0, "non_finite": 0, "mismatch": 0, "unreadable": 0, "examples": []}
    for e in picked:
        series = result_uids(e.study, e.sop, e.model, UID_ROOT).sr_series
        try:
            ds = client.retrieve_instance(e.study, series, e.sr_uid)
            buffer = io.BytesIO()
            ds.save_as(buffer, enforce_file_format=True)
            buffer.seek(0)
            sr = hd.sr.srread(buffer)
            values: dict[str, float] = {}
            numbers: list[float] = []
            for group in sr.content.get_image_measurement_groups():
                for m in group.get_measurements():
                    numbers.append(float(m.value))
                    if m.name.meaning == "Probability" and group.finding_type is not None:
                        values[group.finding_type.meaning] = float(m.value)
        except Exception as exc:  # noqa: BLE001
            out["unreadable"] += 1
            out["examples"].append(f"{e.sop}: {type(exc).__name__}: {exc}"[:200])
            continue
        out["read"] += 1
        probs = list(values.values())
        if (
            not numbers
            or not all(math.isfinite(v) for v in numbers)
            or not all(0.0 <= v <= 1.0 for v in probs)
        ):
            out["non_finite"] += 1
            out["examples"].append(f"{e.sop}: values {numbers}"[:200])
            continue
        row = built.get(e.sop)
        if row is not None and not (
            probs and all(any(abs(v - p) <= 1e-6 for p in row.values()) for v in probs)
        ):  # findings are named by code, not class: each SR value must be one of the row's
            out["mismatch"] += 1
            out["examples"].append(f"{e.sop}: SR {values} vs row {row}"[:200])
    return out


def check_results(
    session: requests.Session, client: Any, dicomweb: str, entries: list[Any]
) -> dict[str, Any]:
    """Every SR and overlay on the server (QIDO-RS) against the state's result UIDs."""
    from cxrkit.pacs.state import DONE

    done = {e.sop: e for e in entries if e.status == DONE}
    want_sr = {e.sr_uid: e.sop for e in done.values()}
    want_ov = {e.overlay_uid: e.sop for e in done.values() if e.overlay_uid}
    srs = {_value(i, "00080018"): i for i in qido_all(session, dicomweb, {"Modality": "SR"})}
    overlays = {
        _value(i, "00080018"): i
        for i in qido_all(session, dicomweb, {"SOPClassUID": SC_CLASS})
        if _value(i, "00080018").startswith(UID_ROOT + ".")
    }
    per_source: Counter = Counter(want_sr[u] for u in srs if u in want_sr)
    extra = {"duplicate": [], "orphan": [], "unreadable": []}
    for uid, item in srs.items():
        if uid in want_sr:
            continue
        try:  # an SR the state does not name: whose is it?
            ds = client.retrieve_instance(_value(item, "0020000D"), _value(item, "0020000E"), uid)
            ev = ds.CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]
            source = str(ev.ReferencedSOPSequence[0].ReferencedSOPInstanceUID)
        except Exception as exc:  # noqa: BLE001
            extra["unreadable"].append(f"{uid}: {type(exc).__name__}")
            continue
        per_source[source] += 1
        extra["duplicate" if source in done else "orphan"].append(f"{uid} of {source}")
    return {
        "srs_on_server": len(srs),
        "overlays_on_server": len(overlays),
        "duplicate_srs": sum(n - 1 for n in per_source.values() if n > 1),
        "sources_with_two_srs": sum(1 for n in per_source.values() if n > 1),
        "orphan_srs": len(extra["orphan"]),
        "unreadable_srs": len(extra["unreadable"]),
        "missing_srs": sum(1 for u in want_sr if u not in srs),
        "missing_overlays": sum(1 for u in want_ov if u not in overlays),
        "orphan_overlays": sum(1 for u in overlays if u not in want_ov),
        "examples": [x for v in extra.values() for x in v][:10],
    }


# ---- the campaign ------------------------------------------------------------------------


def campaign(
    orthanc: Orthanc,
    model: Path,
    *,
    cases: int,
    seed: int = 0,
    batch: int = 1000,
    samples: Path | None = None,
    max_tries: int = 3,
    stall_s: float = 300.0,
    sr_sample: int = 200,
    state: Path,
    progress: Callable[[str], None] = print,
    on_hang: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Fuzz `cases` films through the loop against `orthanc`; the result dict.

    Films go up `batch` at a time, each batch followed by loop passes until one finds
    nothing to do. A hang (no film finished for `stall_s` s) cannot be undone in this
    process: the stacks are dumped, `on_hang` gets the partial result, the process exits 3.
    """
    from cxrkit.cli.threads import passive_openmp_waits

    passive_openmp_waits()  # as `cxr pacs run`, before torch loads
    from cxrkit.pacs import PacsClient, ProcessedStore, connect, make_pool
    from cxrkit.pacs.state import DONE, IN_PROGRESS

    quiet_pydicom()  # no warnings or log lines from hostile films ...
    settings = pydicom.config.settings  # ... but the loop validates as `cxr pacs run` does
    modes = settings.reading_validation_mode, settings.writing_validation_mode
    settings.reading_validation_mode = settings.writing_validation_mode = pydicom.config.WARN
    seeds = dicom_seeds(samples)
    env = {"CXR_PACS_USER": USER, "CXR_PACS_PASSWORD": PASSWORD}
    client = connect(orthanc.dicomweb, env=env)
    pacs = PacsClient(client)
    get_writer = functools.cache(lambda: recording_writer(model))
    store = ProcessedStore(state)
    pool = make_pool()  # the defaults of `cxr pacs run`: 20 s decode timeout, 2048 MB
    session = requests.Session()
    session.auth = AUTH
    camp = Campaign(cases=cases)
    oids: dict[str, list[int]] = {}  # Orthanc ID -> cases stored as it
    start = time.perf_counter()

    def stalled(idle: float) -> None:
        rows = ProcessedStore(state)
        try:
            busy = [f"{e.sop} ({e.stage})" for e in rows.entries(IN_PROGRESS)]
        finally:
            rows.close()
        camp.hangs.append(f"no film finished for {idle:.0f} s; in progress: {busy}")
        faulthandler.dump_traceback(all_threads=True)
        if on_hang is not None:
            on_hang(summarize(camp, [], {}, {}, {}, seeds, time.perf_counter() - start))
        os._exit(3)

    try:
        with Watchdog(stall_s, stalled) as watchdog:
            for first in range(0, cases, batch):
                t0 = time.perf_counter()
                for i in range(first, min(cases, first + batch)):
                    with hostile_writes():
                        case = make_film_case(seeds, i, seed)
                    camp.identity[case.identity] += 1
                    oid, status = upload(session, orthanc.base, case.data)
                    camp.uploads[status.split(":")[0]] += 1
                    if status.startswith("refused"):
                        camp.refused[status.removeprefix("refused: ")] += 1
                    if oid is not None:
                        oids.setdefault(oid, []).append(i)
                    camp.by_case[i] = {
                        "seed": case.seed,
                        "mutation": case.mutation,
                        "identity": case.identity,
                        "upload": status,
                        "oid": oid,
                    }
                    watchdog.beat(in_pass=False)
                camp.upload_seconds += time.perf_counter() - t0
                run_loop(pacs, get_writer, store, pool, camp, watchdog, max_tries)
                done = min(cases, first + batch)
                progress(
                    f"  {done:,}/{cases:,} films up, {camp.passes} passes, "
                    f"{time.perf_counter() - start:.0f} s; states {store.counts()}"
                )
            camp.slowest_film_s = watchdog.longest
            watchdog.beat(in_pass=False)
            films = stored_films(session, orthanc.base, set(oids))
            entries = store.entries()
            writer = get_writer() if get_writer.cache_info().currsize else None
            built = writer.built if writer is not None else {}
            results = check_results(session, client, orthanc.dicomweb, entries)
            done_entries = [e for e in entries if e.status == DONE]
            readback = read_back_srs(client, done_entries, built, sr_sample, seed)
    finally:
        pool.close()
        store.close()
        settings.reading_validation_mode, settings.writing_validation_mode = modes
    rows = (
        {"predicted": writer.rows, "error_rows": dict(writer.error_rows),
         "non_finite": writer.bad_rows}
        if writer is not None else {"predicted": 0, "error_rows": {}, "non_finite": []}
    )  # fmt: skip
    by_sop = {e.sop: e for e in entries}
    outcomes = {}
    for oid, film in films.items():
        entry = by_sop.get(film["sop"])
        if entry is not None:
            outcome = entry.status
        elif film["modality"] in ("CR", "DX"):
            outcome = "no outcome"
        else:
            outcome = "not listed (not CR/DX)"
        outcomes[oid] = {"outcome": outcome, "entry": entry}
        for i in oids[oid]:
            camp.by_case[i]["outcome"] = outcome
            if entry is not None and entry.status != DONE:
                camp.by_case[i]["detail"] = entry.detail
    return summarize(
        camp, entries, outcomes, results, {"rows": rows, "srs": readback}, seeds,
        time.perf_counter() - start,
    )  # fmt: skip


def summarize(
    camp: Campaign,
    entries: list[Any],
    outcomes: dict[str, dict],
    results: dict[str, Any],
    checks: dict[str, Any],
    seeds: list[Seed],
    wall: float,
) -> dict[str, Any]:
    """The result dict of a campaign (partial when the run stopped on a hang)."""
    tally = Counter(o["outcome"] for o in outcomes.values())
    reasons: Counter = Counter()
    details: Counter = Counter()
    for o in outcomes.values():
        e = o["entry"]
        if e is not None and e.status != "done":
            detail = re.sub(r" \(\d+ tries\)$", "", e.detail)
            reasons[f"{e.status}: {detail.split(':')[0].split(' (')[0]}"] += 1
            details[f"{e.status}: {_kind(detail)}"] += 1
    rows = checks.get("rows", {"predicted": 0, "error_rows": {}, "non_finite": []})
    srs = checks.get("srs", {"read": 0, "non_finite": 0, "mismatch": 0, "unreadable": 0})
    non_finite = len(rows["non_finite"]) + srs["non_finite"]
    by_seed: dict[str, Counter] = {}
    for c in camp.by_case.values():
        by_seed.setdefault(c["seed"], Counter())[c.get("outcome") or c["upload"]] += 1
    problems = [
        i for i, c in sorted(camp.by_case.items())
        if c.get("outcome") in ("no outcome", "retry", "in_progress")
    ]  # fmt: skip
    return {
        "cases": camp.cases,
        "uploads": {
            "stored": camp.uploads["stored"],
            "already_stored": camp.uploads["already stored"],
            "refused_by_the_server": camp.uploads["refused"],
        },
        "refused_reasons": dict(camp.refused.most_common()),
        "identity": dict(camp.identity),
        "stored_films": len(outcomes),
        "outcomes": {
            "done": tally["done"],
            "failed": tally["failed"],
            "quarantined": tally["quarantined"],
            "retry_left": tally["retry"] + tally["in_progress"],
            "no_outcome": tally["no outcome"],
            "not_listed": tally["not listed (not CR/DX)"],
        },
        "failure_kinds": dict(reasons.most_common()),
        "top_details": dict(details.most_common(12)),
        "failure_details": dict(details.most_common()),
        "loop_crashes": len(camp.loop_crashes),
        "hangs": len(camp.hangs),
        "non_finite_outputs": non_finite,
        "duplicate_srs": results.get("duplicate_srs", 0),
        "no_outcome": tally["no outcome"],
        "rows": {
            "predicted": rows["predicted"],
            "non_finite": len(rows["non_finite"]),
            "error_rows": rows["error_rows"],
        },
        "srs_read_back": {k: srs[k] for k in ("read", "non_finite", "mismatch", "unreadable")},
        "results_on_server": {k: v for k, v in results.items() if k != "examples"},
        "passes": camp.passes,
        "http_retries": camp.http_retries,
        "loop_log": dict(camp.log_lines.most_common()),
        "slowest_film_s": round(camp.slowest_film_s, 1),
        "upload_s": round(camp.upload_seconds, 1),
        "loop_s": round(sum(camp.pass_seconds), 1),
        "wall_s": round(wall, 1),
        "by_seed": {k: dict(v) for k, v in sorted(by_seed.items())},
        "examples": {
            "loop_crashes": camp.loop_crashes[:3],
            "hangs": camp.hangs[:3],
            "non_finite": (rows["non_finite"] + srs.get("examples", []))[:5],
            "results": results.get("examples", [])[:5],
            "cases_without_outcome": [
                {"case": i, **{k: v for k, v in camp.by_case[i].items() if k != "oid"}}
                for i in problems[:5]
            ],
        },
        "seeds": [s.name for s in seeds],
    }


def problems(result: dict[str, Any]) -> int:
    """The sum of what must be zero."""
    extra = result["results_on_server"]
    return (
        sum(result[k] for k in PROBLEMS)
        + result["outcomes"]["retry_left"]
        + extra.get("missing_srs", 0)
        + extra.get("orphan_srs", 0)
        + result["srs_read_back"]["mismatch"]
    )


def _cpu() -> str | None:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def main(argv: list[str] | None = None) -> int:
    """Start Orthanc and a random model, run the campaign, write the result file."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--seed", type=int, default=0, help="master seed of the campaign")
    ap.add_argument("--batch", type=int, default=1000, help="films stored before each loop run")
    ap.add_argument("--max-tries", type=int, default=3, help="as `cxr pacs run --max-tries`")
    ap.add_argument("--stall-timeout", type=float, default=300.0,
                    help="seconds without a finished film that count as a hang")  # fmt: skip
    ap.add_argument("--sr-sample", type=int, default=200, help="SRs read back and checked")
    ap.add_argument("--samples", type=Path, default=SHARED / "data" / "samples")
    ap.add_argument("--out", type=Path, default=OUT, help="result file to write")
    ap.add_argument("--note", default="", help="a note kept in the result file")
    args = ap.parse_args(argv)
    binary, plugin, why = find_orthanc()
    if plugin is None:
        print(why, file=sys.stderr)
        return 2
    load_start = os.getloadavg()

    def write(result: dict[str, Any]) -> None:
        result = {
            "command": "python benchmarks/pacs_fuzz.py"
            + (f" --cases {args.cases}" if args.cases != 10_000 else ""),
            **result,
            "settings": {
                "seed": args.seed,
                "batch": args.batch,
                "max_tries": args.max_tries,
                "decode_timeout_s": 20.0,
                "decode_memory_mb": 2048,
                "stall_timeout_s": args.stall_timeout,
                "sr_sample": args.sr_sample,
                "model": "random-init small_cnn (tests/serve_helpers.save_random_model, seed 0)",
                "films_per_study": FILMS_PER_STUDY,
            },  # fmt: skip
            "server": server,
            "machine": {"cpus": os.cpu_count(), "cpu": _cpu(), "python": platform.python_version()},
            "load_avg": {
                "start": [round(x, 2) for x in load_start],
                "end": [round(x, 2) for x in os.getloadavg()],
            },
            "note": args.note,
        }
        result.pop("by_case", None)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.out}", flush=True)

    from serve_helpers import save_random_model

    with tempfile.TemporaryDirectory(prefix="cxr-pacs-fuzz-") as tmp:
        folder = Path(tmp)
        model = save_random_model(folder / "model.safetensors")
        with run_orthanc(folder, binary, plugin) as orthanc:
            server = _orthanc_versions(orthanc.base)
            print(
                f"Orthanc {server['orthanc']} at {orthanc.base}; {args.cases:,} cases", flush=True
            )
            result = campaign(
                orthanc, model, cases=args.cases, seed=args.seed, batch=args.batch,
                samples=args.samples, max_tries=args.max_tries, stall_s=args.stall_timeout,
                sr_sample=args.sr_sample, state=folder / "state.sqlite",
                progress=lambda line: print(line, flush=True), on_hang=write,
            )  # fmt: skip
    write(result)
    o = result["outcomes"]
    print(
        f"{result['cases']:,} cases: {result['uploads']['refused_by_the_server']} refused, "
        f"{result['stored_films']:,} stored; done {o['done']:,}, failed {o['failed']:,}, "
        f"quarantined {o['quarantined']}, retry left {o['retry_left']}, not listed "
        f"{o['not_listed']}, no outcome {o['no_outcome']}; loop crashes "
        f"{result['loop_crashes']}, hangs {result['hangs']}, non-finite "
        f"{result['non_finite_outputs']}, duplicate SRs {result['duplicate_srs']}; "
        f"{result['wall_s']:.0f} s"
    )
    return 1 if problems(result) else 0


if __name__ == "__main__":
    sys.exit(main())
