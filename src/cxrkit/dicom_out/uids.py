"""New DICOM UIDs under a root the user may set (an organisation's registered OID)."""

from __future__ import annotations

import re

from pydicom.uid import generate_uid

from cxrkit.errors import CxrkitError

#: Room left after the root for pydicom's random suffix (a UID is at most 64 characters).
MAX_ROOT_LENGTH = 40
_ROOT = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


def check_uid_root(root: str | None) -> str | None:
    """`root` without a trailing dot, or an error saying why it is not a usable UID root."""
    if root is None:
        return None
    root = root.strip().rstrip(".")
    if not _ROOT.match(root):
        raise CxrkitError(
            f"uid_root={root!r}: use digits separated by dots, no leading zeros (e.g. 1.2.826.0.1)"
        )
    if len(root) > MAX_ROOT_LENGTH:
        raise CxrkitError(f"uid_root={root!r}: at most {MAX_ROOT_LENGTH} characters")
    return root


def new_uid(root: str | None = None) -> str:
    """A fresh UID under `root` (checked), or under pydicom's root when `root` is None."""
    root = check_uid_root(root)
    return str(generate_uid(prefix=f"{root}." if root else None))
