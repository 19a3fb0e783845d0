"""Retention of the journal's inspections: past an age, or the oldest beyond a row count.

A row stays while any of its messages waits in the outbox (its verdict is not delivered yet)
and while any of its crops is kept (the crops' own retention decides: the retrain reads
confirmations through them); a row is never removed in its first hour (its crops are written
after its commit). With a row go its confirmations (and those taken back) and, when it was the
first of its content, the content's claim (a later copy of that content is then a first again).
The drift monitor's history rows older than the same age go too.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path

from edge_agent.inputs.filed_retention import Removed
from edge_agent.store.journal import immediate_transaction
from edge_agent.store.sqlite_files import connect

MIN_AGE = dt.timedelta(hours=1)

_UNTOUCHABLE = (
    "EXISTS (SELECT 1 FROM outbox o WHERE o.result_id = inspections.result_id)"
    " OR EXISTS (SELECT 1 FROM crops c WHERE c.result_id = inspections.result_id)"
)


class InspectionPruner:
    """Removes old inspections from the journal in batches, on a connection of its own."""

    def __init__(self, journal_path: Path, max_age_days: float, max_rows: int) -> None:
        self.max_age = dt.timedelta(days=max_age_days)
        self.max_rows = max_rows
        self.rows = 0
        """Inspections in the journal after the last pass."""
        self._lock = threading.Lock()
        self._db = connect(journal_path)

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._db, self._lock)

    def batches(self, limit: int, now: dt.datetime | None = None) -> Iterator[Removed]:
        """One pass over the oldest rows, `limit` rows looked at per batch (one transaction)."""
        now = now or dt.datetime.now(dt.UTC)
        cutoff = _iso(now - self.max_age)
        youngest = _iso(now - MIN_AGE)
        with self._transaction() as db:  # the drift history goes with the same age
            db.execute("DELETE FROM drift_history WHERE at < ?", (cutoff,))
        with self._lock:
            self.rows = self._db.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]
        after = 0
        while True:
            with self._transaction() as db:
                rows = db.execute(
                    f"SELECT rowid, result_id, source_sha256, created_at, {_UNTOUCHABLE}"
                    " FROM inspections WHERE rowid > ? ORDER BY rowid LIMIT ?",
                    (after, limit),
                ).fetchall()
                victims, done = [], not rows
                for rowid, result_id, sha, created_at, untouchable in rows:
                    too_old = created_at < cutoff
                    if created_at >= youngest or not (too_old or self.rows > self.max_rows):
                        done = True
                        break
                    after = rowid
                    if not untouchable:
                        victims.append((result_id, sha))
                        self.rows -= 1
                _delete(db, victims)
            yield Removed(len(victims), 0)
            if done:
                return


def _delete(db: sqlite3.Connection, victims: list[tuple[str, str | None]]) -> None:
    for table in ("confirmations", "withdrawn_confirmations"):
        db.executemany(f"DELETE FROM {table} WHERE result_id = ?", [(r,) for r, _ in victims])
    db.executemany(
        "DELETE FROM contents WHERE source_sha256 = ? AND result_id = ?",
        [(sha, r) for r, sha in victims if sha],
    )
    db.executemany("DELETE FROM inspections WHERE result_id = ?", [(r,) for r, _ in victims])


def _iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")
