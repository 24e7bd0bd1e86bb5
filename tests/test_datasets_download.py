"""The downloader against a local HTTP server: retries, resume, checksums, stalls, kills."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest

from cxrkit.datasets.archive import UnsafeArchiveError
from cxrkit.datasets.download import (
    SUMS_FILE,
    Downloader,
    DownloadError,
    Pacer,
    download_dataset,
    download_files,
    openi_search_files,
    plan,
)
from cxrkit.datasets.registry import RemoteFile
from cxrkit.errors import DatasetError
from datasets_http import LocalServer, Script

BODY = os.urandom(200_000)
SHA = hashlib.sha256(BODY).hexdigest()


def _loader(dest: Path, **kw) -> Downloader:
    kw.setdefault("timeout", 5.0)
    kw.setdefault("backoff", 0.0)
    return Downloader(dest, pacer=Pacer(request_interval=0.0), **kw)


def test_http_500_then_success(tmp_path):
    script = Script({"/a.bin": BODY}, {"/a.bin": ["500", "500", "ok"]})
    with LocalServer(script) as url:
        result = _loader(tmp_path).fetch(RemoteFile("a.bin", url + "/a.bin", SHA))
    assert result.status == "downloaded" and (tmp_path / "a.bin").read_bytes() == BODY
    assert [entry[2] for entry in script.log] == [0, 0, len(BODY)]


def test_truncated_body_resumes_with_range(tmp_path):
    script = Script({"/a.bin": BODY}, {"/a.bin": ["truncate:70000", "ok"]})
    with LocalServer(script) as url:
        result = _loader(tmp_path).fetch(RemoteFile("a.bin", url + "/a.bin", SHA))
    assert (tmp_path / "a.bin").read_bytes() == BODY
    assert script.log[0][1] is None and script.log[1][1] == "bytes=70000-"
    assert script.log[1][2] == len(BODY) - 70000  # the finished bytes were not sent again
    assert result.fetched == len(BODY)


def test_server_ignoring_range_restarts_cleanly(tmp_path):
    (tmp_path / "a.bin.part").write_bytes(BODY[:5000])
    script = Script({"/a.bin": BODY}, {"/a.bin": ["norange"]})
    with LocalServer(script) as url:
        _loader(tmp_path).fetch(RemoteFile("a.bin", url + "/a.bin", SHA))
    assert (tmp_path / "a.bin").read_bytes() == BODY


def test_wrong_checksum_is_refused_and_removed(tmp_path):
    script = Script({"/a.bin": BODY})
    with LocalServer(script) as url, pytest.raises(DownloadError, match="does not match"):
        _loader(tmp_path).fetch(RemoteFile("a.bin", url + "/a.bin", "0" * 64))
    assert not (tmp_path / "a.bin").exists() and not (tmp_path / "a.bin.part").exists()


def test_stalled_server_times_out_then_gives_up(tmp_path):
    script = Script({"/a.bin": BODY}, {"/a.bin": ["stall"]})
    t0 = time.monotonic()
    with LocalServer(script) as url, pytest.raises(DownloadError, match="giving up after 2"):
        _loader(tmp_path, timeout=0.5, retries=1).fetch(RemoteFile("a.bin", url + "/a.bin"))
    assert time.monotonic() - t0 < 10
    assert not (tmp_path / "a.bin").exists()


def test_stall_then_success_recovers(tmp_path):
    script = Script({"/a.bin": BODY}, {"/a.bin": ["stall", "ok"]})
    with LocalServer(script) as url:
        _loader(tmp_path, timeout=0.5).fetch(RemoteFile("a.bin", url + "/a.bin", SHA))
    assert (tmp_path / "a.bin").read_bytes() == BODY


_CHILD = """
import sys
from cxrkit.datasets.download import Downloader, Pacer
from cxrkit.datasets.registry import RemoteFile
Downloader(sys.argv[1], pacer=Pacer(0.0), timeout=30).fetch(RemoteFile("a.bin", sys.argv[2]))
"""


def test_killed_mid_file_resumes_without_refetching_finished_bytes(tmp_path):
    script = Script({"/a.bin": BODY}, {"/a.bin": ["slow:0.01", "ok"]})
    part = tmp_path / "a.bin.part"
    with LocalServer(script) as url:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(tmp_path), url + "/a.bin"])
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (not part.exists() or part.stat().st_size < 40_000):
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait()
        kept = part.stat().st_size
        assert 40_000 <= kept < len(BODY)
        result = _loader(tmp_path).fetch(RemoteFile("a.bin", url + "/a.bin"))
    assert (tmp_path / "a.bin").read_bytes() == BODY
    assert result.status == "resumed" and result.resumed_from == kept
    ranged = [entry for entry in script.log if entry[1]]  # the killed request logs late
    assert ranged == [("/a.bin", f"bytes={kept}-", len(BODY) - kept)]
    # no published checksum: the first complete download's sha256 is recorded beside it
    assert f"{SHA}  a.bin" in (tmp_path / SUMS_FILE).read_text()


def test_recorded_checksum_catches_a_changed_file(tmp_path):
    script = Script({"/a.bin": BODY})
    with LocalServer(script) as url:
        _loader(tmp_path).fetch(RemoteFile("a.bin", url + "/a.bin"))
    (tmp_path / "a.bin").write_bytes(BODY[:-1] + b"x")
    with pytest.raises(DownloadError, match="does not match"):
        _loader(tmp_path).fetch(RemoteFile("a.bin", url + "/a.bin"))
    assert not (tmp_path / "a.bin").exists()


def _tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def test_malicious_archive_is_refused_and_nothing_lands_outside(tmp_path):
    link = tarfile.TarInfo("images/evil_link")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    evil = _tar([_file("images/ok.png"), _file("../../escaped.txt"), (link, None)])
    dest = tmp_path / "dest"
    script = Script({"/NLMCXR_png.tgz": evil})
    with LocalServer(script) as url, pytest.raises(UnsafeArchiveError, match=r"\.\."):
        download_files(
            [(RemoteFile("NLMCXR_png.tgz", url + "/NLMCXR_png.tgz"), url + "/NLMCXR_png.tgz")],
            dest,
            progress=False,
            pacer=Pacer(0.0),
        )
    assert not (tmp_path / "escaped.txt").exists() and not Path("escaped.txt").exists()
    assert not (dest / "images" / "ok.png").exists()  # what it wrote before refusing is gone
    outside = [p for p in tmp_path.rglob("*") if dest not in p.parents and p != dest]
    assert outside == []


def test_download_dataset_with_base_url_fetches_and_unpacks(tmp_path):
    png = _tar([_file("NLMCXR_png/CXR1_1_IM-0001-3001.png", b"png")])
    reports = _tar([_file("ecgen-radiology/1.xml", b"<eCitation/>")])
    script = Script({"/NLMCXR_png.tgz": png, "/NLMCXR_reports.tgz": reports})
    with LocalServer(script) as url:
        planned = download_dataset("openi", tmp_path, base_url=url, dry_run=True)
        assert [p.status for p in planned] == ["planned", "planned"] and not script.log
        results = download_dataset(
            "openi", tmp_path, base_url=url + "/", workers=2, progress=False, pacer=Pacer(0.0)
        )
        again = download_dataset("openi", tmp_path, base_url=url, progress=False)
    assert sorted(r.status for r in results) == ["downloaded", "downloaded"]
    assert [r.status for r in again] == ["cached", "cached"] and len(script.log) == 2
    assert (tmp_path / "NLMCXR_png" / "CXR1_1_IM-0001-3001.png").read_bytes() == b"png"
    assert (tmp_path / "ecgen-radiology" / "1.xml").is_file()


def test_registered_sets_print_how_to_obtain_them():
    with pytest.raises(DatasetError, match="physionet"):
        plan("mimic")
    urls = [url for _, url in plan("nih")]
    assert len(urls) == 12 and all(u.startswith("https://nihcc.box.com/") for u in urls)


def test_openi_search_mode_pages_xvision_query(tmp_path):
    import json

    from cxrkit.datasets.openi import search_url

    def page(start: int, n: int) -> bytes:
        items = [
            {"imgLarge": f"/imgs/512/{i}/{i}/CXR{i}_IM.png?k=1"} for i in range(start, start + n)
        ]
        return json.dumps({"total": 150, "list": items}).encode()

    script = Script(
        {search_url(1, "/api/search"): page(1, 100), search_url(101, "/api/search"): page(101, 50)}
    )
    with LocalServer(script) as url:
        files = openi_search_files(tmp_path, base_url=url, pacer=Pacer(0.0))
    assert len(files) == 150 and files[0][1] == url + "/imgs/512/1/1/CXR1_IM.png"
    assert [entry[0] for entry in script.log] == [
        "/api/search?it=x,xg&m=1&n=100",
        "/api/search?it=x,xg&m=101&n=200",
    ]
    assert sorted(p.name for p in (tmp_path / "search").iterdir()) == [
        "page_000001.json",
        "page_000101.json",
    ]


def test_dry_run_says_how_each_file_will_be_checked(tmp_path, monkeypatch):
    """A file with a published sha256 is pinned; the others are trusted on first use (their
    digest is recorded in SHA256SUMS and checked on every later run)."""
    from cxrkit.datasets import download as dl
    from cxrkit.datasets.registry import RemoteFile

    pinned = RemoteFile("a.tgz", "http://x/a.tgz", sha256="ab" * 32)
    unpinned = RemoteFile("b.tgz", "http://x/b.tgz")
    monkeypatch.setattr(dl, "plan", lambda name, base_url=None: [
        (pinned, pinned.url), (unpinned, unpinned.url)])  # fmt: skip
    planned = dl.download_dataset("any", tmp_path, dry_run=True)
    assert [p.check for p in planned] == [f"pinned sha256 {'ab' * 32}", dl.TRUST_ON_FIRST_USE]
    assert [p.url for p in planned] == ["http://x/a.tgz", "http://x/b.tgz"]
    assert not list(tmp_path.iterdir())  # a plan fetches nothing
