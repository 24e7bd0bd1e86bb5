"""Run `cxr ARGS...` with one atomic write stalled half-way, so a test can SIGKILL it there.

Usage: `python tests/fault_harness.py ARGS...` with, in the environment,
`CXR_TEST_STALL_GLOB` (fnmatch pattern on the temp file's full path, e.g. `*/.last.pt.*.tmp`),
`CXR_TEST_STALL_NTH` (stall the N-th matching write, default 1) and `CXR_TEST_STALL_MARKER`
(a file created once half of the first chunk is on disk). The stalled process sleeps until
killed. Only this test-side script patches anything: the product code runs unchanged.
Without `CXR_TEST_STALL_GLOB` it is plain `cxr`.
"""

from __future__ import annotations

import fnmatch
import os
import sys
import time
from pathlib import Path
from typing import Any

_GLOB = os.environ.get("CXR_TEST_STALL_GLOB", "")
_NTH = int(os.environ.get("CXR_TEST_STALL_NTH", "1"))
_MARKER = os.environ.get("CXR_TEST_STALL_MARKER", "")


class _StallingFile:
    """A binary file that writes half of its first chunk, marks the moment, then sleeps."""

    def __init__(self, fh: Any, name: str) -> None:
        self._fh, self._name = fh, name

    def write(self, data: Any) -> int:
        """Write half of `data`, flush it, create the marker, sleep until killed."""
        view = memoryview(data).cast("B")
        self._fh.write(view[: max(1, len(view) // 2)])
        self._fh.flush()  # in the page cache: a SIGKILL cannot lose it
        Path(_MARKER).write_text(self._name)
        time.sleep(600)
        raise SystemExit("stalled write was not killed")

    def __enter__(self) -> _StallingFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._fh, name)


class _OsProxy:
    """`os` for `cxrkit.io.atomic`, whose `fdopen` stalls the N-th matching temp file."""

    def __init__(self) -> None:
        self.seen = 0

    def fdopen(self, fd: int, *args: Any, **kwargs: Any) -> Any:
        """`os.fdopen`, wrapped in `_StallingFile` for the chosen temp file."""
        fh = os.fdopen(fd, *args, **kwargs)
        name = os.readlink(f"/proc/self/fd/{fd}")
        if fnmatch.fnmatch(name, _GLOB):
            self.seen += 1
            if self.seen == _NTH:
                return _StallingFile(fh, name)
        return fh

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)


def main() -> None:
    """Patch `cxrkit.io.atomic` (when asked) and run the `cxr` entry point."""
    if _GLOB:
        import cxrkit.io.atomic

        cxrkit.io.atomic.os = _OsProxy()  # type: ignore[assignment]
    from cxrkit.cli.app import main as cxr_main

    sys.argv = ["cxr", *sys.argv[1:]]
    cxr_main()


if __name__ == "__main__":
    main()
