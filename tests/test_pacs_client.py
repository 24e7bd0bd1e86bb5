"""The PACS loop's parts without a server: token transport, retries, paging, state, UIDs."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip(
    "dicomweb_client", reason="the 'dicom' extra (dicomweb-client) is not installed"
)


def test_a_bearer_token_is_refused_over_plain_http_to_another_host() -> None:
    from cxrkit.errors import CxrkitError
    from cxrkit.pacs import cleartext_credentials, connect

    token = {"CXR_PACS_TOKEN": "t0k"}
    with pytest.raises(CxrkitError, match=r"CXR_PACS_TOKEN would go to pacs\.lan over plain"):
        connect("http://pacs.lan/dicom-web", env=token)
    for url in ("http://127.0.0.1:8042/dicom-web", "http://localhost/dw", "http://[::1]:80/dw"):
        assert connect(url, env=token)._session.headers["Authorization"] == "Bearer t0k"
    insecure = connect("http://pacs.lan/dicom-web", env=token, allow_insecure=True)
    assert insecure._session.headers["Authorization"] == "Bearer t0k"
    assert connect("https://pacs.lan/dicom-web", env=token)._session.headers["Authorization"]
    assert cleartext_credentials("http://pacs.lan/dw", token) == "CXR_PACS_TOKEN"
    basic = {"CXR_PACS_USER": "u", "CXR_PACS_PASSWORD": "p"}
    assert cleartext_credentials("http://pacs.lan/dw", basic) == "CXR_PACS_PASSWORD"  # warned
    assert cleartext_credentials("https://pacs.lan/dw", basic) is None
    assert cleartext_credentials("http://127.0.0.1/dw", basic) is None


def test_the_cli_refuses_a_token_over_http_before_loading_anything(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from cxrkit.cli.app import app
    from cxrkit.cli.flags import as_flags
    from cxrkit.errors import CxrkitError

    args = ["pacs", "run", str(tmp_path / "m"), "--url", "http://pacs.lan/dicom-web"]
    result = CliRunner().invoke(app, args, env={"CXR_PACS_TOKEN": "t0k"})
    assert isinstance(result.exception, CxrkitError), result.output
    assert "--allow-insecure" in as_flags(str(result.exception))  # as `cxr` prints it


def _http_error(status: int) -> Exception:
    import requests

    response = requests.Response()
    response.status_code = status
    return requests.HTTPError(f"{status} Server Error", response=response)


class _Flaky:
    """A DICOMweb client whose calls fail with the given errors first."""

    def __init__(self, *errors: Exception) -> None:
        self.errors, self.calls = list(errors), 0

    def search_for_instances(self, **kw: Any) -> list[dict]:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return [{"00080018": {"Value": ["1.2.3"]}}]


def test_5xx_and_connection_errors_are_retried_with_capped_backoff() -> None:
    import requests

    from cxrkit.pacs import PacsClient, PacsError, RetryPolicy, ServerUnreachable

    waits: list[float] = []
    policy = RetryPolicy(attempts=6, base_s=0.5, cap_s=2.0)
    assert list(policy.delays()) == [0.5, 1.0, 2.0, 2.0, 2.0]  # doubling, capped
    flaky = _Flaky(_http_error(503), requests.ConnectionError("refused"), _http_error(500))
    pacs = PacsClient(flaky, policy, sleep=waits.append)
    assert pacs.search_instances({}, [], 0, 10) and flaky.calls == 4 and pacs.retries == 3
    assert waits == [0.5, 1.0, 2.0]
    with pytest.raises(PacsError, match="404") as info:  # not worth repeating: at once
        PacsClient(_Flaky(_http_error(404)), policy, sleep=waits.append).existing("1", ["2"])
    assert not info.value.transient and info.value.status == 404
    down = _Flaky(*[requests.ConnectionError("refused")] * 3)
    with pytest.raises(ServerUnreachable, match="after 3 attempts"):
        PacsClient(down, RetryPolicy(attempts=3), sleep=lambda s: None).existing("1", ["2"])
    busy = _Flaky(*[_http_error(502)] * 2)
    with pytest.raises(PacsError, match="502") as info:
        PacsClient(busy, RetryPolicy(attempts=2), sleep=lambda s: None).existing("1", ["2"])
    assert info.value.transient and not isinstance(info.value, ServerUnreachable)


class _Pages:
    """QIDO over `n` instances, at most `cap` per answer; `offset` ignored when asked."""

    def __init__(self, n: int, cap: int, ignore_offset: bool = False) -> None:
        self.n, self.cap, self.ignore_offset, self.calls = n, cap, ignore_offset, 0

    def search_for_instances(self, *, offset: int, limit: int, **kw: Any) -> list[dict]:
        self.calls += 1
        start = 0 if self.ignore_offset else offset
        stop = min(self.n, start + min(limit, self.cap))
        return [
            {"0020000D": {"Value": ["1.2"]}, "00080018": {"Value": [f"1.2.{k}"]}}
            for k in range(start, stop)
        ]


def test_qido_pages_by_offset_past_a_cap_and_stops_when_offset_is_ignored() -> None:
    from cxrkit.pacs import find_instances

    capped = _Pages(250, cap=100)
    assert len(find_instances(capped, ["DX"], None)) == 250 and capped.calls == 4
    lines: list[str] = []
    deaf = _Pages(250, cap=100, ignore_offset=True)
    assert len(find_instances(deaf, ["DX"], None, lines.append)) == 100 and deaf.calls == 2
    assert "may ignore 'offset'" in lines[0]
    assert len(find_instances(_Pages(0, cap=100), ["CR", "DX"], None)) == 0


def test_state_counts_tries_and_migrates_old_files(tmp_path: Path) -> None:
    from cxrkit.pacs import ProcessedStore

    old = tmp_path / "old.sqlite"  # a state file of the first PACS loop: no tries column
    with sqlite3.connect(old) as db:
        db.execute(
            "CREATE TABLE processed (sop_instance_uid TEXT PRIMARY KEY, study_instance_uid "
            "TEXT NOT NULL, series_instance_uid TEXT NOT NULL, status TEXT NOT NULL, detail "
            "TEXT NOT NULL DEFAULT '', sr_sop_instance_uid TEXT, overlay_sop_instance_uid "
            "TEXT, model TEXT NOT NULL DEFAULT '', processed_at TEXT NOT NULL)"
        )
        db.execute(
            "INSERT INTO processed VALUES ('1.9', '1', '1.1', 'done', '', 'x', 'y', 'm', 't')"
        )
    db.close()
    store = ProcessedStore(old)
    assert store.known("1.9") and store.get("1.9").tries == 0  # type: ignore[union-attr]
    assert store.begin("1.8", "1", "1.1", "m 1") == 1 and store.begin("1.8", "1", "1.1") == 2
    assert store.get("1.8").status == "in_progress"  # type: ignore[union-attr]
    store.stage("1.8", "store", "2.25.1", "2.25.2")
    store.release("1.8", "server unreachable")  # not the film's fault: the try is undone
    entry = store.get("1.8")
    assert entry is not None and entry.tries == 1 and entry.status == "retry"
    assert (entry.sr_uid, entry.overlay_uid, entry.stage) == ("2.25.1", "2.25.2", "store")
    store.finish("1.8", "quarantined", "hangs")
    store.reset("1.8")  # --retry-failed
    assert store.get("1.8").tries == 0 and not store.known("1.8", retry_failed=True)  # type: ignore[union-attr]
    with pytest.raises(ValueError):
        store.finish("1.8", "in_progress")
    assert store.counts() == {"done": 1, "retry": 1}
    store.close()


def test_result_uids_are_stable_per_film_and_model_and_valid() -> None:
    from pydicom.uid import UID

    from cxrkit.pacs import result_uids

    a = result_uids("1.2.3", "1.2.3.4", "demo 1.0", None)
    assert a == result_uids("1.2.3", "1.2.3.4", "demo 1.0", None)
    assert a.sr != result_uids("1.2.3", "1.2.3.4", "demo 1.1", None).sr  # another model
    assert a.sr != result_uids("1.2.3", "1.2.3.5", "demo 1.0", None).sr  # another film
    assert a.sr_series == result_uids("1.2.3", "1.2.3.5", "demo 1.0", None).sr_series
    rooted = result_uids("1.2.3", "1.2.3.4", "demo 1.0", "1.2.826.0.1.3680043.10.543")
    assert rooted.sr.startswith("1.2.826.0.1.3680043.10.543.")
    uids = [a.sr, a.sr_series, a.overlay, a.overlay_series, rooted.sr, rooted.overlay]
    assert all(UID(u).is_valid for u in uids) and len(set(uids)) == len(uids)
    assert a.sr.startswith("2.25.")


class _Server:
    """A DICOMweb client over a dict: films to find and fetch, results stored by UID."""

    def __init__(self, films: dict[str, Any]) -> None:
        self.films, self.stored, self.stows, self.fetches = films, set[str](), 0, 0

    def search_for_instances(self, **kw: Any) -> list[dict]:
        uid = (kw.get("search_filters") or {}).get("SOPInstanceUID")
        if uid is not None:
            return [{"00080018": {"Value": [uid]}}] if uid in self.stored else []
        if kw["offset"] or kw["search_filters"]["Modality"] != "DX":
            return []
        tags = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
        codes = ("0020000D", "0020000E", "00080018")
        return [
            {c: {"Value": [str(ds[t].value)]} for c, t in zip(codes, tags, strict=True)}
            for ds in self.films.values()
        ]

    def retrieve_instance(self, study: str, series: str, sop: str) -> Any:
        self.fetches += 1
        return self.films[sop]

    def store_instances(self, datasets: list[Any], study_instance_uid: str) -> Any:
        from pydicom.dataset import Dataset

        self.stows += 1
        self.stored |= {str(ds.SOPInstanceUID) for ds in datasets}
        return Dataset()


class _Writer:
    model_name, model_version, uid_root, overlay = "fake", "1", None, False

    def predict_image(self, image: Any, name: str) -> tuple[dict, None]:
        return {"path": name, "label": "normal"}, None

    def build(self, source: Any, row: dict, image: Any, heatmap: Any) -> Any:
        from pydicom.dataset import Dataset

        from cxrkit.dicom_out import DicomResults

        sr = Dataset()
        sr.SOPInstanceUID, sr.SeriesInstanceUID = "1.2.3", "1.2.4"  # replaced by stable UIDs
        return DicomResults(str(source.SOPInstanceUID), sr, None)


class _Pool:
    """Decodes every film but those whose Image Comments name a fault."""

    def decode(self, data: bytes, name: str) -> tuple[Any, None]:
        from cxrkit.errors import DecodeTimeoutError, DicomError

        if b"HANG" in data:
            raise DecodeTimeoutError(name, "decoding took longer than 1 s")
        if b"BROKEN" in data:
            raise DicomError(name, "broken pixel data")
        return object(), None


def test_run_once_records_every_outcome_and_bounds_the_tries(tmp_path: Path) -> None:
    """Without a server: failed (permanent) vs retry (transient) then quarantined, a film
    the process died on, results an earlier try stored, --retry-failed."""
    import numpy as np
    import pydicom

    from cxrkit.pacs import PacsClient, ProcessedStore, RetryPolicy, result_uids, run_once
    from dicom_factory import make_dataset

    def film(comment: str) -> Any:
        return make_dataset(
            np.zeros((32, 32), np.uint8), modality="DX", ImageComments=comment,
            StudyInstanceUID=pydicom.uid.generate_uid(), SeriesInstanceUID="1.2.9",
        )  # fmt: skip

    films = {ds.SOPInstanceUID: ds for ds in map(film, ["ok", "HANG", "BROKEN", "ok", "ok"])}
    good, hang, broken, died, stored_then_died = list(films)
    server = _Server(films)
    store = ProcessedStore(tmp_path / "state.sqlite")
    store.begin(died, "1", "1.2.9", "fake 1")  # a try the process died in (decode)
    store.stage(died, "decode")
    study = films[stored_then_died].StudyInstanceUID  # its SR stored, then the process died
    store.begin(stored_then_died, study, "1.2.9", "fake 1")
    server.stored.add(result_uids(study, stored_then_died, "fake 1", None).sr)
    lines: list[str] = []
    pacs = PacsClient(server, RetryPolicy(attempts=1))

    def once(**kw: Any) -> Any:
        return run_once(
            pacs,
            _Writer,
            store,
            modalities=["DX"],
            pool=_Pool(),
            max_tries=2,
            log=lines.append,
            **kw,
        )  # type: ignore[arg-type]

    first = once()
    assert any(line.startswith(f"skipped {broken}: unreadable film") for line in lines)
    assert (first.found, first.new, first.retried, first.done) == (5, 3, 2, 3)
    assert first.already_stored == 1 and server.stows == 2  # good + died; not stored_then_died
    status = {e.sop: (e.status, e.tries) for e in store.entries()}
    assert status[hang] == ("retry", 1) and status[broken] == ("failed", 1)
    assert status[died] == ("done", 2) and status[stored_then_died] == ("done", 2)
    second = once()
    assert second.retried == 1 and [s for s, _ in second.quarantined] == [hang]
    assert store.get(hang).status == "quarantined"  # type: ignore[union-attr]
    fetches = server.fetches
    third = once()
    assert third.retried == 0 and server.fetches == fetches  # settled films are not fetched
    fourth = once(retry_failed=True)
    assert fourth.retried == 2 and store.get(hang).tries == 1  # type: ignore[union-attr]
    assert server.stows == 2  # nothing stored twice
    store.close()


def test_a_film_fetched_but_not_writable_is_reported_as_such(tmp_path: Path) -> None:
    """Found by the PACS fuzz run: a film the server returns but pydicom cannot write back
    (e.g. an empty transfer syntax) failed as 'could not retrieve it'; it is a failed film
    with the right reason, and the loop goes on."""
    import numpy as np
    import pydicom

    from cxrkit.pacs import PacsClient, ProcessedStore, RetryPolicy, run_once
    from dicom_factory import make_dataset

    class Unwritable(pydicom.Dataset):
        def save_as(self, *args: Any, **kwargs: Any) -> None:
            raise AttributeError("'str' object has no attribute 'is_private'")

    ds = make_dataset(np.zeros((32, 32), np.uint8), modality="DX", SeriesInstanceUID="1.2.9",
                      StudyInstanceUID=pydicom.uid.generate_uid())  # fmt: skip
    bad = Unwritable(ds)
    bad.file_meta = ds.file_meta
    server = _Server({bad.SOPInstanceUID: bad})
    store = ProcessedStore(tmp_path / "state.sqlite")
    lines: list[str] = []
    summary = run_once(PacsClient(server, RetryPolicy(attempts=1)), _Writer, store,
                       modalities=["DX"], pool=_Pool(), log=lines.append)  # fmt: skip
    assert summary.done == 0 and server.stows == 0
    assert any("retrieved, but not a writable DICOM file" in line for line in lines), lines
    assert not any("could not retrieve" in line for line in lines)
    assert store.get(str(bad.SOPInstanceUID)).status == "failed"  # type: ignore[union-attr]
    store.close()
