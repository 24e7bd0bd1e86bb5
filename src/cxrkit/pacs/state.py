"""What the PACS loop has done, in SQLite: each source instance is processed once."""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from pathlib import Path

DONE, FAILED = "done", "failed"

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
    processed_at TEXT NOT NULL
)
"""


class ProcessedStore:
    """A small SQLite file: source SOP Instance UID -> done / failed (+ why, what was stored)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path)
        with self.db:
            self.db.execute(_SCHEMA)

    def known(self, sop_instance_uid: str, retry_failed: bool = False) -> bool:
        """True when the instance was processed before (failed ones too, unless retried)."""
        row = self.db.execute(
            "SELECT status FROM processed WHERE sop_instance_uid = ?", (sop_instance_uid,)
        ).fetchone()
        return row is not None and not (retry_failed and row[0] == FAILED)

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
        """Remember the outcome for one source instance (replacing an earlier failure)."""
        with self.db:
            self.db.execute(
                "INSERT OR REPLACE INTO processed VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    sop_instance_uid,
                    study_instance_uid,
                    series_instance_uid,
                    status,
                    detail,
                    sr_uid,
                    overlay_uid,
                    model,
                    datetime.now(timezone.utc).isoformat(timespec="seconds"),
                ),
            )

    def counts(self) -> dict[str, int]:
        """Number of instances per status."""
        rows = self.db.execute("SELECT status, COUNT(*) FROM processed GROUP BY status")
        return {status: int(n) for status, n in rows}

    def close(self) -> None:
        """Close the database."""
        self.db.close()
