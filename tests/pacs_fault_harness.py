"""Run `cxr ARGS...` with a SIGKILL of the whole process at a chosen point of the PACS loop.

Usage: `python tests/pacs_fault_harness.py pacs run ...` with, in the environment,
`CXR_TEST_PACS_KILL` = `before-store` / `after-store` (kill the process just before the
N-th STOW-RS, or just after it returned: the results are on the server, the state does not
know yet; N = `CXR_TEST_PACS_KILL_NTH`, default 1) or `decode` (kill it when a film holding
`CXR-FAULT-KILL` reaches the decoder: a film that takes the whole process down each time).
Only this test-side script patches anything: the product code runs unchanged. Without
`CXR_TEST_PACS_KILL` it is plain `cxr`.
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

_KILL = os.environ.get("CXR_TEST_PACS_KILL", "")
_NTH = int(os.environ.get("CXR_TEST_PACS_KILL_NTH", "1"))
KILL_MARKER = b"CXR-FAULT-KILL"


def _die() -> None:
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def _patch() -> None:
    from cxrkit.io.pool import DecodePool
    from cxrkit.pacs.client import PacsClient

    if _KILL in ("before-store", "after-store"):
        store, calls = PacsClient.store, [0]

        def killing_store(self: PacsClient, datasets: Any, study: str) -> None:
            calls[0] += 1
            if calls[0] == _NTH and _KILL == "before-store":
                _die()
            store(self, datasets, study)
            if calls[0] == _NTH:
                _die()

        PacsClient.store = killing_store  # type: ignore[method-assign]
    elif _KILL == "decode":
        decode = DecodePool.decode

        def killing_decode(self: DecodePool, data: bytes, *args: Any, **kwargs: Any) -> Any:
            if KILL_MARKER in data:
                _die()
            return decode(self, data, *args, **kwargs)

        DecodePool.decode = killing_decode  # type: ignore[method-assign]
    elif _KILL:
        raise SystemExit(f"CXR_TEST_PACS_KILL={_KILL!r}: before-store, after-store or decode")


def main() -> None:
    """Patch (when asked) and run the `cxr` entry point."""
    _patch()
    from cxrkit.cli.app import main as cxr_main

    sys.argv = ["cxr", *sys.argv[1:]]
    cxr_main()


if __name__ == "__main__":
    main()
