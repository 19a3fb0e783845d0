"""New verdicts read from the agent's journal over a read-only connection, in journal order."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.store.sqlite_files import connect

_COLUMNS = "rowid, result_id, session, seq, part_id, camera, evaluation, verdict_json, created_at"


@dataclass(frozen=True)
class BoardResult:
    """One journaled board verdict, as the OPC UA model shows it."""

    rowid: int
    result_id: str
    session: int
    seq: int
    part_id: str
    camera: str
    evaluation: str
    created_at: str
    verdict: dict[str, Any]
    content: str  # the verdict as the journal holds it (JSON): what clients are sent, as it is

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> BoardResult:
        return cls(
            rowid=row["rowid"],
            result_id=row["result_id"],
            session=row["session"],
            seq=row["seq"],
            part_id=row["part_id"] or "",
            camera=row["camera"] or "",
            evaluation=row["evaluation"],
            created_at=row["created_at"],
            verdict=json.loads(row["verdict_json"]),
            content=row["verdict_json"],
        )


class JournalFollower:
    """Reads the journal (WAL) without ever writing or locking it; `rowid` is the cursor."""

    def __init__(self, path: Path) -> None:
        self._db = connect(path, read_only=True)
        self._db.row_factory = sqlite3.Row
        self.last_rowid = 0

    def close(self) -> None:
        self._db.close()

    def latest(self, count: int) -> list[BoardResult]:
        """The newest `count` verdicts, oldest first; the cursor moves past all of them."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM inspections ORDER BY rowid DESC LIMIT ?", (count,)
        ).fetchall()
        results = [BoardResult.from_row(row) for row in reversed(rows)]
        newest = self._db.execute("SELECT COALESCE(MAX(rowid), 0) FROM inspections").fetchone()
        self.last_rowid = max(self.last_rowid, newest[0])
        return results

    def new(self, limit: int = 500) -> list[BoardResult]:
        """Verdicts journaled since the last call, in journal order (at most `limit`)."""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM inspections WHERE rowid > ? ORDER BY rowid LIMIT ?",
            (self.last_rowid, limit),
        ).fetchall()
        if rows:
            self.last_rowid = rows[-1]["rowid"]
        return [BoardResult.from_row(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """Results journaled per camera (what the handshake counters start from)."""
        rows = self._db.execute("SELECT camera, COUNT(*) FROM inspections GROUP BY camera")
        return {camera or "": count for camera, count in rows.fetchall()}

    def by_id(self, result_id: str) -> BoardResult | None:
        row = self._db.execute(
            f"SELECT {_COLUMNS} FROM inspections WHERE result_id = ?", (result_id,)
        ).fetchone()
        return None if row is None else BoardResult.from_row(row)
