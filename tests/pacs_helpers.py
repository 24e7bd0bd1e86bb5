"""A throwaway Orthanc PACS with its DICOMweb plugin, for the `cxr pacs run` tests."""

from __future__ import annotations

import contextlib
import glob
import http.server
import json
import shutil
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from serve_helpers import free_port, stop_process

USER, PASSWORD = "cxr", "test-password"
PLUGIN_GLOBS = (
    "/usr/share/orthanc/plugins/libOrthancDicomWeb.so",
    "/usr/lib/orthanc/libOrthancDicomWeb.so*",
)


@dataclass
class Orthanc:
    """A running Orthanc: its REST root, DICOMweb root and log file; `restart()` keeps its
    port and storage (for the fault tests)."""

    base: str
    log: Path
    argv: list[str] = field(default_factory=list, repr=False)
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def dicomweb(self) -> str:
        return f"{self.base}/dicom-web"

    def upload(self, path: Path) -> dict:
        """POST a DICOM file to the REST API; Orthanc's answer (ID, status)."""
        return self.upload_bytes(path.read_bytes())

    def upload_bytes(self, data: bytes) -> dict:
        """POST a DICOM file's bytes to the REST API; Orthanc's answer."""
        r = requests.post(f"{self.base}/instances", data=data, auth=(USER, PASSWORD), timeout=30)
        r.raise_for_status()
        return r.json()

    def count_instances(self) -> int:
        r = requests.get(f"{self.base}/statistics", auth=(USER, PASSWORD), timeout=30)
        r.raise_for_status()
        return int(r.json()["CountInstances"])

    def start(self, timeout: float = 60) -> None:
        """Start the server process and wait until DICOMweb answers."""
        with self.log.open("ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=out)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"Orthanc exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}"
                )
            with contextlib.suppress(requests.RequestException):
                r = requests.get(f"{self.dicomweb}/studies", auth=(USER, PASSWORD), timeout=2)
                if r.status_code == 200:
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"Orthanc not ready in {timeout} s:\n{self.log.read_text()[-3000:]}"
                )
            time.sleep(0.2)

    def stop(self) -> None:
        """Stop the server process (SIGTERM, then SIGKILL)."""
        if self.proc is not None and self.proc.poll() is None:
            stop_process(self.proc, timeout=20)


#: The Debian packages the PACS tests start (the DICOMweb plugin is a package of its own).
ORTHANC_INSTALL = "apt-get install orthanc orthanc-dicomweb"


def find_orthanc() -> tuple[str | None, str | None, str]:
    """(binary, DICOMweb plugin, why not) of the Debian packages `orthanc` / `orthanc-dicomweb`."""
    binary = shutil.which("Orthanc") or (
        "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None
    )
    plugins = [p for g in PLUGIN_GLOBS for p in sorted(glob.glob(g))]
    if binary is None:
        return (
            None,
            None,
            "Orthanc not installed (Debian package orthanc; `make test` installs it as root)",
        )
    if not plugins:
        return (
            binary,
            None,
            "Orthanc's DICOMweb plugin not installed (Debian package orthanc-dicomweb)",
        )
    return binary, plugins[0], ""


@contextlib.contextmanager
def run_orthanc(
    folder: Path, binary: str, plugin: str, timeout: float = 60, **settings: object
) -> Iterator[Orthanc]:
    """Orthanc on a free local port, storage in `folder`, basic auth, DICOM port off;
    `settings` are added to its configuration (e.g. LimitFindInstances=100)."""
    port = free_port()
    config = {
        "Name": "cxrkit-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "storage"),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": True,
        "RegisteredUsers": {USER: PASSWORD},
        "HttpCompressionEnabled": False,
        "SaveJobs": False,
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/", "EnableWado": False},
        **settings,
    }
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    server = Orthanc(
        f"http://127.0.0.1:{port}", folder / "orthanc.log", [binary, str(folder / "orthanc.json")]
    )
    try:
        server.start(timeout)
        yield server
    finally:
        server.stop()


class FaultProxy:
    """An HTTP proxy in front of a server that misbehaves on demand (the PACS fault tests).

    `qido_cap`: QIDO-RS searches get at most this many results per answer (the request's
    `limit` lowered), as servers that cap their pages do; `ignore_offset`: the `offset` of
    a search is dropped (every page is the first); `fail_next`: that many next requests
    get 503 without reaching the server; `stow_lost_answers`: that many STOW-RS requests
    reach the server (which stores them) and then get 502, as when an answer is lost.
    `searches` counts the QIDO-RS requests forwarded.
    """

    def __init__(self, target: str) -> None:
        self.target = target.rstrip("/")
        self.qido_cap: int | None = None
        self.ignore_offset = False
        self.fail_next = 0
        self.stow_lost_answers = 0
        self.searches = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                proxy.handle(self, "GET")

            def do_POST(self) -> None:  # noqa: N802
                proxy.handle(self, "POST")

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def dicomweb(self) -> str:
        return f"{self.base}/dicom-web"

    def __enter__(self) -> FaultProxy:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _take(self, name: str) -> bool:
        with self.lock:
            if getattr(self, name) > 0:
                setattr(self, name, getattr(self, name) - 1)
                return True
            return False

    def handle(self, req: http.server.BaseHTTPRequestHandler, method: str) -> None:
        """Forward one request (rewritten or failed as configured) and send the answer."""
        body = _read_body(req) if method == "POST" else None
        if self._take("fail_next"):
            return _answer(req, 503, b"injected 503", "text/plain")
        split = urllib.parse.urlsplit(req.path)
        query = urllib.parse.parse_qsl(split.query, keep_blank_values=True)
        is_search = method == "GET" and split.path.rstrip("/").rsplit("/", 1)[-1] in (
            "studies",
            "series",
            "instances",
        )
        if is_search:
            with self.lock:
                self.searches += 1
            if self.ignore_offset:
                query = [(k, v) for k, v in query if k != "offset"]
            if self.qido_cap is not None:
                limit = min([self.qido_cap] + [int(v) for k, v in query if k == "limit"])
                query = [(k, v) for k, v in query if k != "limit"] + [("limit", str(limit))]
        headers = {
            k: v
            for k, v in req.headers.items()
            if k.lower() in ("authorization", "content-type", "accept")
        }
        url = self.target + split.path + ("?" + urllib.parse.urlencode(query) if query else "")
        r = requests.request(method, url, data=body, headers=headers, timeout=60)
        if method == "POST" and self._take("stow_lost_answers"):
            return _answer(req, 502, b"injected 502 after the server stored it", "text/plain")
        _answer(req, r.status_code, r.content, r.headers.get("Content-Type", ""))


def _read_body(req: http.server.BaseHTTPRequestHandler) -> bytes:
    """A request's body, plain or chunked (requests sends a generator body chunked)."""
    if req.headers.get("Transfer-Encoding", "").lower() != "chunked":
        return req.rfile.read(int(req.headers.get("Content-Length") or 0))
    parts = []
    while True:
        size = int(req.rfile.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while req.rfile.readline().strip():  # trailers, then the blank line
                pass
            return b"".join(parts)
        parts.append(req.rfile.read(size))
        req.rfile.readline()


def _answer(
    req: http.server.BaseHTTPRequestHandler, status: int, body: bytes, content_type: str
) -> None:
    req.send_response(status)
    if content_type:
        req.send_header("Content-Type", content_type)
    req.send_header("Content-Length", str(len(body)))
    req.end_headers()
    req.wfile.write(body)
