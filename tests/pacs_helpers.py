"""A throwaway Orthanc PACS with its DICOMweb plugin, for the `cxr pacs run` tests."""

from __future__ import annotations

import contextlib
import glob
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
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
    """A running Orthanc: its REST root, DICOMweb root and log file."""

    base: str
    log: Path

    @property
    def dicomweb(self) -> str:
        return f"{self.base}/dicom-web"

    def upload(self, path: Path) -> dict:
        """POST a DICOM file to the REST API; Orthanc's answer (ID, status)."""
        r = requests.post(
            f"{self.base}/instances", data=path.read_bytes(), auth=(USER, PASSWORD), timeout=30
        )
        r.raise_for_status()
        return r.json()

    def count_instances(self) -> int:
        r = requests.get(f"{self.base}/statistics", auth=(USER, PASSWORD), timeout=30)
        r.raise_for_status()
        return int(r.json()["CountInstances"])


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
def run_orthanc(folder: Path, binary: str, plugin: str, timeout: float = 60) -> Iterator[Orthanc]:
    """Orthanc on a free local port, storage in `folder`, basic auth, DICOM port off."""
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
    }
    (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
    log = folder / "orthanc.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([binary, str(folder / "orthanc.json")], stdout=out, stderr=out)
    server = Orthanc(f"http://127.0.0.1:{port}", log)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"Orthanc exited with {proc.returncode}:\n{log.read_text()[-3000:]}"
                )
            with contextlib.suppress(requests.RequestException):
                r = requests.get(f"{server.dicomweb}/studies", auth=(USER, PASSWORD), timeout=2)
                if r.status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"Orthanc not ready in {timeout} s:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield server
    finally:
        stop_process(proc, timeout=20)
