"""Outside programs some tests need (Orthanc, dciodvfy, Chromium).

Where `make test` can install them (root, with apt-get: as CI runs it), a missing one is a
test failure that names the install command, so a green run always includes those tests;
elsewhere the test skips with the same words, shown in the run's summary of skips.
`CXR_CAN_INSTALL=0/1` overrides the guess (for the test of this rule).
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest


def can_install() -> bool:
    """Whether this run could have installed Debian packages (root with apt-get)."""
    forced = os.environ.get("CXR_CAN_INSTALL")
    if forced in ("0", "1"):
        return forced == "1"
    return hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("apt-get") is not None


def missing_tool(why: str, install: str) -> NoReturn:
    """Fail (installable here) or skip (not installable) a test whose tool is missing."""
    hint = f"{why}; install it with `{install}` (`make test` does, as root)"
    if can_install():
        pytest.fail(f"{hint}: a run that can install it must not skip this test", pytrace=False)
    pytest.skip(hint)
