"""The PACS loop: find new films (QIDO-RS), fetch (WADO-RS), predict, store results (STOW-RS).

Films are untrusted input: each is decoded in a `DecodePool` worker (memory limit,
timeout; a worker that hangs or crashes is killed and replaced), never in this process.
Each film is marked in progress in the `ProcessedStore` before it is fetched and gets its
outcome before the next one starts (done / failed / retry / quarantined), so a film that
kills the whole process is tried at most `max_tries` times across restarts. Results get
stable UIDs (`cxrkit.pacs.uids`) and a film tried again is first looked up on the server,
so one film never gets two SRs from one model.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cxrkit.errors import CxrkitError, DecoderCrashError, DecodeTimeoutError, ImageReadError
from cxrkit.pacs.client import PacsClient, PacsError, ServerUnreachable, reason
from cxrkit.pacs.state import DONE, FAILED, QUARANTINED, RETRY, Entry, ProcessedStore
from cxrkit.pacs.uids import pin_uids, result_uids

if TYPE_CHECKING:
    from cxrkit.io.pool import DecodePool

STUDY, SERIES, SOP = "0020000D", "0020000E", "00080018"
PAGE = 500  # QIDO results asked per request (a server may give fewer: paging goes on)
MAX_TRIES = 3
DECODE_TIMEOUT_S = 20.0  # as `cxr serve`
DECODE_MEMORY_MB = 2048


@dataclass(frozen=True)
class Instance:
    """One film on the server."""

    study: str
    series: str
    sop: str


@dataclass
class RunSummary:
    """What one pass did."""

    found: int = 0
    new: int = 0
    retried: int = 0  # films seen before, tried again in this pass
    done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    quarantined: list[tuple[str, str]] = field(default_factory=list)
    stored: int = 0
    already_stored: int = 0  # films whose results an earlier, interrupted try had stored
    retries: int = 0  # HTTP requests sent again after a connection error or 5xx
    seconds: float = 0.0


class _Failed(Exception):
    """One film's try failed; `transient`: a later try may succeed."""

    def __init__(self, reason: str, transient: bool) -> None:
        super().__init__(reason)
        self.reason, self.transient = reason, transient


def parse_since(value: str | None) -> str | None:
    """A QIDO StudyDate lower bound (YYYYMMDD) from YYYY-MM-DD or YYYYMMDD."""
    if value is None:
        return None
    digits = value.replace("-", "")
    try:
        datetime.strptime(digits, "%Y%m%d")
    except ValueError:
        raise CxrkitError(f"since={value!r}: use a date as YYYY-MM-DD") from None
    return digits


def parse_modalities(value: str) -> list[str]:
    """['CR', 'DX'] from 'CR,DX' (checked: DICOM modality codes are short upper-case words)."""
    modalities = [m.strip().upper() for m in value.split(",") if m.strip()]
    if not modalities or not all(re.fullmatch(r"[A-Z0-9_]{1,16}", m) for m in modalities):
        raise CxrkitError(f"modality={value!r}: give DICOM modality codes such as CR,DX")
    return modalities


def make_pool(timeout_s: float = DECODE_TIMEOUT_S, memory_mb: int = DECODE_MEMORY_MB) -> DecodePool:
    """The decode pool of the loop: one worker process (the loop does one film at a time)."""
    from cxrkit.io.pool import DecodePool

    return DecodePool(1, memory_mb=memory_mb, timeout_s=timeout_s)


def as_pacs_client(client: Any, log: Callable[[str], None] | None = None) -> PacsClient:
    """`client` itself when it is a `PacsClient`, else a `PacsClient` around it."""
    return client if isinstance(client, PacsClient) else PacsClient(client, log=log)


def find_instances(
    client: Any,
    modalities: list[str],
    since: str | None,
    log: Callable[[str], None] | None = None,
) -> list[Instance]:
    """All instances of the modalities (studies on or after `since`), paged, de-duplicated.

    Pages are asked by offset until one is empty or brings no instance not seen before:
    a server that caps its answers below `PAGE` is read to the end, one that ignores
    `offset` (the same page again) stops the paging with a warning, never a loop.
    """
    pacs = as_pacs_client(client, log)
    found: dict[str, Instance] = {}
    for modality in modalities:
        filters = {"Modality": modality}
        if since:
            filters["StudyDate"] = f"{since}-"
        offset, seen = 0, set[str]()
        while True:
            page = pacs.search_instances(filters, ["StudyDate"], offset, PAGE)
            fresh = 0
            for item in page:
                inst = Instance(_uid(item, STUDY), _uid(item, SERIES), _uid(item, SOP))
                if inst.sop and inst.sop not in seen:
                    seen.add(inst.sop)
                    found.setdefault(inst.sop, inst)
                    fresh += 1
            if not page:
                break
            if not fresh:
                if log is not None:
                    log(
                        f"warning: QIDO-RS offset {offset} gave only instances already listed "
                        f"(the server may ignore 'offset'): {len(seen)} {modality} instances "
                        "listed, there may be more; narrow the query with --since"
                    )
                break
            offset += len(page)
    return list(found.values())


def _uid(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


def _plan(entry: Entry | None, retry_failed: bool, max_tries: int) -> str | None:
    """'new', 'reset', 'retry', 'quarantine', or None (nothing to do) for one instance."""
    if entry is None:
        return "new"
    if entry.status == DONE:
        return None
    if retry_failed:
        return "reset"
    if entry.status in (FAILED, QUARANTINED):
        return None
    return "retry" if entry.tries < max_tries else "quarantine"  # RETRY or IN_PROGRESS


def _last_failure(entry: Entry) -> str:
    """Why an entry's last try ended: its detail, or where the process died."""
    if entry.status == RETRY and entry.detail:
        return entry.detail
    return f"the process stopped during {entry.stage or 'its processing'}"


def run_once(
    client: Any,
    get_writer: Callable[[], Any],
    store: ProcessedStore,
    *,
    modalities: list[str],
    since: str | None = None,
    dry_run: bool = False,
    retry_failed: bool = False,
    max_tries: int = MAX_TRIES,
    pool: DecodePool | None = None,
    log: Callable[[str], None] = print,
) -> RunSummary:
    """One pass over the server.

    `client` is a `PacsClient` or the `DICOMwebClient` of `connect`. `get_writer()` gives
    the `cxrkit.dicom_out.DicomResultWriter` (model loaded); it is called only when there
    are films to process, so a pass with nothing to do stays cheap. `pool` decodes the
    films (a one-worker pool of this pass without it). `retry_failed` resets the tries of
    every film without a result (give it to one pass, not to each pass of a watch loop).
    A server that cannot be reached even after the retries ends the pass with a
    `CxrkitError` (the film in hand is not counted against it).
    """
    if max_tries < 1:
        raise CxrkitError(f"max_tries={max_tries}: give at least 1")
    start = time.perf_counter()
    summary = RunSummary()
    pacs = as_pacs_client(client, log)
    retries_before = pacs.retries
    try:
        instances = find_instances(pacs, modalities, since, log)
    except Exception as exc:  # HTTP 401/404, refused connections, non-JSON answers
        raise CxrkitError(f"cannot query the server (QIDO-RS): {_why(exc)}") from exc
    summary.found = len(instances)
    todo: list[tuple[Instance, Entry | None]] = []
    for inst in instances:
        entry = store.get(inst.sop)
        action = _plan(entry, retry_failed, max_tries)
        if action is None:
            continue
        if action == "quarantine":
            assert entry is not None
            why = f"{_last_failure(entry)} ({entry.tries} tries)"
            if dry_run:
                log(f"would quarantine {inst.sop}: {why}")
                continue
            store.finish(inst.sop, QUARANTINED, why)
            summary.quarantined.append((inst.sop, why))
            log(f"quarantined {inst.sop}: {why}; --retry-failed tries it again")
            continue
        if action == "new":
            summary.new += 1
        else:
            summary.retried += 1
            if action == "reset" and not dry_run:
                store.reset(inst.sop)
        todo.append((inst, entry))
    if dry_run:
        for inst, entry in todo:
            again = "" if entry is None else f" again ({entry.status}, {entry.tries} tries)"
            log(f"would process {inst.sop} (study {inst.study}){again}")
    elif todo:
        writer = get_writer()
        own_pool = pool is None
        pool = make_pool() if pool is None else pool
        try:
            with tempfile.TemporaryDirectory(prefix="cxr-pacs-") as tmp:
                one = _OneFilm(pacs, writer, pool, store, max_tries, Path(tmp), summary, log)
                for inst, entry in todo:
                    one.run(inst, entry)
        finally:
            if own_pool:
                pool.close()
    summary.retries = pacs.retries - retries_before
    summary.seconds = time.perf_counter() - start
    return summary


def _why(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, PacsError) else reason(exc)


class _OneFilm:
    """Fetch, decode, predict and store one film, recording each step and the outcome."""

    def __init__(
        self,
        pacs: PacsClient,
        writer: Any,
        pool: DecodePool,
        store: ProcessedStore,
        max_tries: int,
        tmp: Path,
        summary: RunSummary,
        log: Callable[[str], None],
    ) -> None:
        self.pacs, self.writer, self.pool, self.store = pacs, writer, pool, store
        self.max_tries, self.tmp, self.summary, self.log = max_tries, tmp, summary, log
        self.model = f"{writer.model_name} {writer.model_version}"

    def run(self, inst: Instance, previous: Entry | None) -> None:
        """One try of `inst`; its outcome is in the store when this returns."""
        sop = inst.sop
        tries = self.store.begin(sop, inst.study, inst.series, self.model)
        try:
            earlier = self._attempt(inst, previous is not None)
        except ServerUnreachable as exc:
            self.store.release(sop, f"server unreachable: {exc}")
            raise CxrkitError(
                f"lost the server while processing {sop} ({exc}); the next run goes on"
            ) from exc
        except KeyboardInterrupt:
            self.store.release(sop, "interrupted (Ctrl-C)")
            raise
        except _Failed as failure:
            self._failed(inst, tries, failure)
            return
        except Exception as exc:  # a bug or an odd film: recorded, bounded by max_tries
            self._failed(inst, tries, _Failed(f"unexpected error: {reason(exc)}", True))
            return
        self.store.finish(sop, DONE, earlier or "")
        self.summary.done += 1
        if earlier:
            self.summary.already_stored += 1
            self.log(f"results of {sop} were already in study {inst.study} ({earlier})")
        else:
            self.log(f"stored results of {sop} in study {inst.study}")

    def _failed(self, inst: Instance, tries: int, failure: _Failed) -> None:
        if not failure.transient:
            status, note = FAILED, ""
        elif tries >= self.max_tries:
            status, note = QUARANTINED, f" (try {tries} of {self.max_tries}: quarantined)"
        else:
            status, note = RETRY, f" (try {tries} of {self.max_tries}; tried again next pass)"
        detail = failure.reason if status != QUARANTINED else f"{failure.reason} ({tries} tries)"
        self.store.finish(inst.sop, status, detail)
        self.summary.failed.append((inst.sop, failure.reason))
        if status == QUARANTINED:
            self.summary.quarantined.append((inst.sop, detail))
        self.log(f"skipped {inst.sop}: {failure.reason}{note}")

    def _present(self, study: str, uids: list[str]) -> set[str]:
        """Which of `uids` the server has (empty when it cannot say, e.g. no such filter)."""
        try:
            return self.pacs.existing(study, uids)
        except ServerUnreachable:
            raise
        except (PacsError, ValueError, KeyError, TypeError):
            return set()

    def _attempt(self, inst: Instance, retried: bool) -> str | None:
        """Process the film: None when its results are stored now, a note when an earlier
        try had stored them (and the process died before recording it)."""
        from cxrkit.dicom_out import read_source

        sop, writer = inst.sop, self.writer
        uids = result_uids(inst.study, sop, self.model, writer.uid_root)
        wanted = [uids.sr, uids.overlay] if writer.overlay else [uids.sr]
        present = self._present(inst.study, wanted) if retried else set()
        if present >= set(wanted):  # an earlier try stored them, then the process died
            return "stored by an earlier try"
        try:
            ds = self.pacs.retrieve(inst.study, inst.series, sop)
        except ServerUnreachable:
            raise
        except PacsError as exc:
            raise _Failed(f"could not retrieve it ({exc})", exc.transient) from exc
        except Exception as exc:  # unparsable payloads
            raise _Failed(f"could not retrieve it (WADO-RS): {reason(exc)}", False) from exc
        path = self.tmp / "film.dcm"
        try:  # a header pydicom cannot write back (e.g. an empty transfer syntax)
            ds.save_as(path, enforce_file_format=True)
            data = path.read_bytes()
        except Exception as exc:
            why = f"retrieved, but not a writable DICOM file: {reason(exc)}"
            raise _Failed(why, False) from exc
        self.store.stage(sop, "decode")
        try:
            image, _ = self.pool.decode(data, str(path))
        except (DecodeTimeoutError, DecoderCrashError) as exc:  # maybe load: try again later
            raise _Failed(f"unreadable film: {exc.reason}", True) from exc
        except ImageReadError as exc:
            raise _Failed(f"unreadable film: {exc.reason}", False) from exc
        self.store.stage(sop, "predict")
        try:
            row, heatmap = writer.predict_image(image, str(path))
        except Exception as exc:
            raise _Failed(f"prediction failed: {reason(exc)}", True) from exc
        if "error" in row:
            raise _Failed(f"unreadable film: {row['error']}", False)
        try:
            results = writer.build(read_source(path), row, image, heatmap)
        except Exception as exc:  # one odd header must not stop the loop
            raise _Failed(f"no results: {reason(exc)}", False) from exc
        pin_uids(results.sr, uids.sr_series, uids.sr)
        datasets = [results.sr]
        if results.overlay is not None:
            pin_uids(results.overlay, uids.overlay_series, uids.overlay)
            datasets.append(results.overlay)
        # the UIDs are in the state before STOW: a rerun after a crash looks them up
        overlay_uid = uids.overlay if results.overlay is not None else None
        self.store.stage(sop, "store", uids.sr, overlay_uid)
        datasets = [d for d in datasets if d.SOPInstanceUID not in present]
        try:
            self.pacs.store(datasets, inst.study)
        except ServerUnreachable:
            raise
        except PacsError as exc:  # stored but the answer was lost, or a duplicate refused?
            uids_sent = [str(d.SOPInstanceUID) for d in datasets]
            if self._present(inst.study, uids_sent) < set(uids_sent):
                raise _Failed(f"could not store the results ({exc})", exc.transient) from exc
            self.log(f"note: {exc}; yet the server has the results of {sop}")
        self.summary.stored += len(datasets)
        return None
