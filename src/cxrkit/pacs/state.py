"""What the PACS loop has done, in SQLite: each source instance's outcome and its tries.

A film is marked `in_progress` (its try counted) before it is fetched, and gets its
outcome before the loop moves on: `done`, `failed` (the film itself cannot be processed),
`retry` (a transient error: tried again on a later pass) or `quarantined` (tried
`max_tries` times without an outcome). A pass that finds a film still `in_progress` knows
the process died on it: that try failed. Every change is committed at once, so a killed
process loses nothing but the try it was in.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

IN_PROGRESS, DONE, FAILED, RETRY, QUARANTINED = (
    "in_progress",
    "done",
    "failed",
    "retry",
    "quarantined",
)
STATUSES = (IN_PROGRESS, DONE, FAILED, RETRY, QUARANTINED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS processed (
    sop_instance_uid TEXT PRIMARY KEY,
    study_instance_uid TEXT NOT NULL,
    series_instance_uid TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    sr_sop_instance_uid TEXT,
    overlay_sop_instance_uid TEXT,
    model TEXT NOT NULL DEFAULT '',
    processed_at TEXT NOT NULL,
    tries INTEGER NOT NULL DEFAULT 0,
    stage TEXT NOT NULL DEFAULT ''
)
"""
#: Columns added since the first state files (added to old files on open).
_ADDED = {"tries": "INTEGER NOT NULL DEFAULT 0", "stage": "TEXT NOT NULL DEFAULT ''"}


@dataclass(frozen=True)
class Entry:
    """One source instance's row."""

    sop: str
    study: str
    series: str
    status: str
    detail: str
    sr_uid: str | None
    overlay_uid: str | None
    model: str
    tries: int
    stage: str


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class ProcessedStore:
    """A small SQLite file: source SOP Instance UID -> status, tries, why, what was stored."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        with self.db:
            self.db.execute(_SCHEMA)
            have = {row[1] for row in self.db.execute("PRAGMA table_info(processed)")}
            for column, kind in _ADDED.items():
                if column not in have:
                    self.db.execute(f"ALTER TABLE processed ADD COLUMN {column} {kind}")

    def get(self, sop_instance_uid: str) -> Entry | None:
        """The instance's row, or None when it was never seen."""
        row = self.db.execute(
            "SELECT sop_instance_uid, study_instance_uid, series_instance_uid, status, detail, "
            "sr_sop_instance_uid, overlay_sop_instance_uid, model, tries, stage "
            "FROM processed WHERE sop_instance_uid = ?",
            (sop_instance_uid,),
        ).fetchone()
        return None if row is None else Entry(*row)

    def known(self, sop_instance_uid: str, retry_failed: bool = False) -> bool:
        """True when the instance was processed before (failed ones too, unless retried)."""
        entry = self.get(sop_instance_uid)
        return entry is not None and not (retry_failed and entry.status != DONE)

    def begin(self, sop_instance_uid: str, study: str, series: str, model: str = "") -> int:
        """Mark the instance in progress and count the try; the number of this try."""
        with self.db:
            self.db.execute(
                "INSERT INTO processed (sop_instance_uid, study_instance_uid, "
                "series_instance_uid, status, model, processed_at, tries, stage) "
                "VALUES (?, ?, ?, ?, ?, ?, 1, 'fetch') ON CONFLICT(sop_instance_uid) DO UPDATE "
                "SET status = excluded.status, model = excluded.model, tries = tries + 1, "
                "stage = 'fetch', processed_at = excluded.processed_at",
                (sop_instance_uid, study, series, IN_PROGRESS, model, _now()),
            )
        entry = self.get(sop_instance_uid)
        assert entry is not None
        return entry.tries

    def stage(
        self,
        sop_instance_uid: str,
        stage: str,
        sr_uid: str | None = None,
        overlay_uid: str | None = None,
    ) -> None:
        """Note where an in-progress instance is (and, before STOW, the UIDs being stored)."""
        with self.db:
            self.db.execute(
                "UPDATE processed SET stage = ?, "
                "sr_sop_instance_uid = COALESCE(?, sr_sop_instance_uid), "
                "overlay_sop_instance_uid = COALESCE(?, overlay_sop_instance_uid) "
                "WHERE sop_instance_uid = ?",
                (stage, sr_uid, overlay_uid, sop_instance_uid),
            )

    def finish(self, sop_instance_uid: str, status: str, detail: str = "") -> None:
        """Record the outcome of the current try."""
        if status not in STATUSES or status == IN_PROGRESS:
            raise ValueError(f"not an outcome: {status!r}")
        with self.db:
            self.db.execute(
                "UPDATE processed SET status = ?, detail = ?, processed_at = ? "
                "WHERE sop_instance_uid = ?",
                (status, detail, _now(), sop_instance_uid),
            )

    def release(self, sop_instance_uid: str, detail: str) -> None:
        """Undo the current try (not the film's fault, e.g. the server went away): retry."""
        with self.db:
            self.db.execute(
                "UPDATE processed SET status = ?, detail = ?, tries = MAX(tries - 1, 0) "
                "WHERE sop_instance_uid = ?",
                (RETRY, detail, sop_instance_uid),
            )

    def reset(self, sop_instance_uid: str) -> None:
        """Forget the tries of a film that has no result yet (`--retry-failed`)."""
        with self.db:
            self.db.execute(
                "UPDATE processed SET status = ?, tries = 0 "
                "WHERE sop_instance_uid = ? AND status != ?",
                (RETRY, sop_instance_uid, DONE),
            )

    def record(
        self,
        sop_instance_uid: str,
        study_instance_uid: str,
        series_instance_uid: str,
        status: str,
        detail: str = "",
        sr_uid: str | None = None,
        overlay_uid: str | None = None,
        model: str = "",
    ) -> None:
        """Set an instance's outcome in one step (its tries are kept)."""
        with self.db:
            self.db.execute(
                "INSERT INTO processed (sop_instance_uid, study_instance_uid, "
                "series_instance_uid, status, detail, sr_sop_instance_uid, "
                "overlay_sop_instance_uid, model, processed_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(sop_instance_uid) DO UPDATE SET status = excluded.status, "
                "detail = excluded.detail, sr_sop_instance_uid = excluded.sr_sop_instance_uid, "
                "overlay_sop_instance_uid = excluded.overlay_sop_instance_uid, "
                "model = excluded.model, processed_at = excluded.processed_at",
                (
                    sop_instance_uid,
                    study_instance_uid,
                    series_instance_uid,
                    status,
                    detail,
                    sr_uid,
                    overlay_uid,
                    model,
                    _now(),
                ),
            )

    def entries(self, *statuses: str) -> list[Entry]:
        """Every row (with these statuses, when given), oldest first."""
        sql = (
            "SELECT sop_instance_uid, study_instance_uid, series_instance_uid, status, detail, "
            "sr_sop_instance_uid, overlay_sop_instance_uid, model, tries, stage FROM processed"
        )
        if statuses:
            sql += f" WHERE status IN ({', '.join('?' * len(statuses))})"
        return [Entry(*row) for row in self.db.execute(sql + " ORDER BY rowid", statuses)]

    def counts(self) -> dict[str, int]:
        """Number of instances per status."""
        rows = self.db.execute("SELECT status, COUNT(*) FROM processed GROUP BY status")
        return {status: int(n) for status, n in rows}

    def close(self) -> None:
        """Close the database."""
        self.db.close()
