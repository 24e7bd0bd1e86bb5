"""The PACS loop: find new films (QIDO-RS), fetch (WADO-RS), predict, store results (STOW-RS).

Each source instance is processed once (`ProcessedStore`); a film that cannot be fetched,
decoded or stored is reported, recorded as failed and skipped, and the loop goes on.
"""

from __future__ import annotations

import re
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cxrkit.errors import CxrkitError
from cxrkit.pacs.state import DONE, FAILED, ProcessedStore

STUDY, SERIES, SOP = "0020000D", "0020000E", "00080018"
PAGE = 500  # QIDO results asked per request


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
    done: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    stored: int = 0
    seconds: float = 0.0


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


def find_instances(client: Any, modalities: list[str], since: str | None) -> list[Instance]:
    """All instances of the modalities (studies on or after `since`), paged, de-duplicated."""
    found: dict[str, Instance] = {}
    for modality in modalities:
        filters = {"Modality": modality}
        if since:
            filters["StudyDate"] = f"{since}-"
        offset = 0
        while True:
            page = client.search_for_instances(
                search_filters=filters, fields=["StudyDate"], offset=offset, limit=PAGE
            )
            for item in page:
                inst = Instance(_uid(item, STUDY), _uid(item, SERIES), _uid(item, SOP))
                if inst.sop:
                    found.setdefault(inst.sop, inst)
            if len(page) < PAGE:
                break
            offset += len(page)
    return list(found.values())


def _uid(item: dict[str, Any], tag: str) -> str:
    values = item.get(tag, {}).get("Value") or [""]
    return str(values[0])


def run_once(
    client: Any,
    get_writer: Callable[[], Any],
    store: ProcessedStore,
    *,
    modalities: list[str],
    since: str | None = None,
    dry_run: bool = False,
    retry_failed: bool = False,
    batch_size: int = 8,
    log: Callable[[str], None] = print,
) -> RunSummary:
    """One pass over the server.

    `get_writer()` gives the `cxrkit.dicom_out.DicomResultWriter` (model loaded); it is
    called only when there are new films, so a pass with nothing to do stays cheap.
    """
    start = time.perf_counter()
    summary = RunSummary()
    try:
        instances = find_instances(client, modalities, since)
    except Exception as exc:  # HTTP 401/404, refused connections, non-JSON answers
        raise CxrkitError(f"cannot query the server (QIDO-RS): {_reason(exc)}") from exc
    summary.found = len(instances)
    new = [i for i in instances if not store.known(i.sop, retry_failed)]
    summary.new = len(new)
    if dry_run:
        for inst in new:
            log(f"would process {inst.sop} (study {inst.study})")
        summary.seconds = time.perf_counter() - start
        return summary
    writer = get_writer() if new else None
    model = f"{writer.model_name} {writer.model_version}" if writer else ""
    for batch in _batches(new, batch_size):
        for inst, outcome in _process(client, writer, batch):
            if isinstance(outcome, str):
                summary.failed.append((inst.sop, outcome))
                store.record(inst.sop, inst.study, inst.series, FAILED, outcome, model=model)
                log(f"skipped {inst.sop}: {outcome}")
                continue
            summary.done += 1
            summary.stored += len(outcome)
            sr_uid = outcome[0].SOPInstanceUID
            sc_uid = outcome[1].SOPInstanceUID if len(outcome) > 1 else None
            store.record(inst.sop, inst.study, inst.series, DONE, "", sr_uid, sc_uid, model)
            log(f"stored results of {inst.sop} in study {inst.study}")
    summary.seconds = time.perf_counter() - start
    return summary


def _batches(items: list[Instance], size: int) -> Iterator[list[Instance]]:
    for i in range(0, len(items), max(1, size)):
        yield items[i : i + max(1, size)]


def _process(client: Any, writer: Any, batch: list[Instance]) -> Iterator[tuple[Instance, Any]]:
    """(instance, [stored datasets]) or (instance, reason) for each film of the batch."""
    from cxrkit.dicom_out import read_source

    with tempfile.TemporaryDirectory(prefix="cxr-pacs-") as tmp:
        fetched: list[tuple[Instance, Path]] = []
        for inst in batch:
            try:
                ds = client.retrieve_instance(inst.study, inst.series, inst.sop)
                path = Path(tmp) / f"{len(fetched)}.dcm"
                ds.save_as(path, enforce_file_format=True)
            except Exception as exc:  # HTTP errors, unparsable payloads: skip this one
                yield inst, f"could not retrieve it (WADO-RS): {_reason(exc)}"
                continue
            fetched.append((inst, path))
        if not fetched:
            return
        for inst, path in fetched:
            row, image, heatmap = writer.predict_file(path)  # one decode, one forward pass
            if "error" in row:
                yield inst, f"unreadable film: {row['error']}"
                continue
            try:
                results = writer.build(read_source(path), row, image, heatmap)
            except Exception as exc:  # one odd header must not stop the loop
                yield inst, f"no results: {_reason(exc)}"
                continue
            datasets = [results.sr] + ([results.overlay] if results.overlay is not None else [])
            try:
                client.store_instances(datasets, study_instance_uid=inst.study)
            except Exception as exc:
                yield inst, f"could not store the results (STOW-RS): {_reason(exc)}"
                continue
            yield inst, datasets


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}"[:300]
