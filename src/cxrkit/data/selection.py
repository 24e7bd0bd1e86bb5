"""Which labelled sets chose something about a model, so that their figures read as optimistic.

A model card's `selection_sets` lists every set used to choose anything (recipe, head,
threshold method, early stopping, a site threshold, ensemble weights), each by its name and
its fingerprint (`cxrkit.data.identity.set_fingerprint`), with what it chose:

    [{"name": "kermany_site", "labels_sha256": "...", "used_for": ["threshold method"]}]

`cxr evaluate` on a set whose fingerprint is listed marks its figures "used for selection:
optimistic": a set that chose cannot also give an unbiased estimate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cxrkit.card import ModelCard

OPTIMISTIC_NOTE = "used for selection: optimistic"


def add_selection_set(
    existing: Sequence[Mapping[str, Any]] | None,
    name: str,
    labels_sha256: str | None,
    used_for: list[str],
) -> list[dict[str, Any]]:
    """`existing` with the set added, or its `used_for` extended when already listed."""
    out = [dict(entry) for entry in existing or []]
    if not labels_sha256:
        return out
    for entry in out:
        if entry.get("labels_sha256") == labels_sha256:
            entry["used_for"] = list(dict.fromkeys([*entry.get("used_for", []), *used_for]))
            return out
    out.append({"name": name, "labels_sha256": labels_sha256, "used_for": list(used_for)})
    return out


def selection_use(
    card: ModelCard | dict[str, Any], labels_sha256: str | None
) -> dict[str, Any] | None:
    """The card's `selection_sets` entry with this fingerprint, or None."""
    if not labels_sha256:
        return None
    for entry in ModelCard.from_dict(card).provenance.selection_sets:
        if entry.get("labels_sha256") == labels_sha256:
            return dict(entry)
    return None


def selection_flag(card: ModelCard | dict[str, Any], labels_sha256: str | None) -> dict[str, Any]:
    """The `selection` block of an evaluation: whether this set chose anything, and what."""
    entry = selection_use(card, labels_sha256)
    if entry is None:
        return {"used_for_selection": False, "labels_sha256": labels_sha256}
    used = ", ".join(entry.get("used_for") or ["(not recorded)"])
    return {
        "used_for_selection": True,
        "labels_sha256": labels_sha256,
        "used_for": list(entry.get("used_for") or []),
        "note": f"{OPTIMISTIC_NOTE} (this set chose: {used})",
    }
