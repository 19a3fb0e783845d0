"""Crops the agent scored, kept for review and retraining: PNG files plus rows in the journal.

<state>/crops/<connector>/<YYYY-MM-DD>/<result_id>.png, indexed by a `crops` table in
`<state>/journal.sqlite` (result id, connector, score, verdict, model version, size, time).
Retention removes the oldest crops past an age or a disk budget; under the disk budget the
crops nobody confirmed go first. Crops give way to the journal: below `min_free_bytes` free on
the state filesystem no crop is written and retention removes crops until that much is free.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from edge_agent.contracts.atomic import write_bytes_atomic
from edge_agent.contracts.clock import utc_now
from edge_agent.inspect.imaging import encode_png
from edge_agent.ops.storage import free_bytes
from edge_agent.store.journal import create_tables, immediate_transaction
from edge_agent.store.sqlite_files import connect

log = structlog.get_logger()

CROPS_DIR = "crops"
JOURNAL_FILE = "journal.sqlite"
PNG_COMPRESSION = 1

_CONFIRMED = (
    "EXISTS (SELECT 1 FROM confirmations f"
    " WHERE f.result_id = crops.result_id AND f.connector = crops.connector)"
)


@dataclass(frozen=True)
class KeptCrop:
    """One kept crop: where its PNG is and what the agent said about it."""

    result_id: str
    connector: str
    path: Path
    score: float | None
    evaluation: str
    model_version: str | None
    created_at: str


@dataclass(frozen=True)
class LabelledCrop:
    """A kept crop with its latest confirmation (label, who, when)."""

    crop: KeptCrop
    label: str
    by: str
    at: str


@dataclass(frozen=True)
class PruneResult:
    """What one retention pass removed, and whether more is due."""

    removed: int
    freed_bytes: int
    more: bool


class CropStore:
    """Writes, indexes, prunes and lists kept crops; safe to share between threads."""

    def __init__(self, state_dir: Path, min_free_bytes: int = 0) -> None:
        self.root = Path(state_dir) / CROPS_DIR
        self.root.mkdir(parents=True, exist_ok=True)
        self.min_free_bytes = min_free_bytes
        self._paused = False
        self._lock = threading.Lock()
        self._db = connect(Path(state_dir) / JOURNAL_FILE)
        self._db.execute("PRAGMA journal_mode=WAL")
        with self._transaction() as db:
            create_tables(db)

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._db, self._lock)

    def _query(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        """Close the index; the store cannot be used afterwards."""
        with self._lock:
            self._db.close()

    def keep(self, verdict: Mapping[str, Any], crops: Mapping[str, np.ndarray]) -> int:
        """Write each connector's crop of a journaled board and index it; returns how many.

        Nothing is written while the state filesystem has less than `min_free_bytes` free.
        """
        if not self._room():
            return 0
        result_id = verdict["result_id"]
        created_at = verdict.get("created_at") or utc_now()
        day_folder = created_at[:10]
        rows_by_id = {row.get("id"): row for row in verdict.get("connectors", [])}
        rows, written = [], []
        try:
            for connector, crop in crops.items():
                relative = Path(connector) / day_folder / f"{result_id}.png"
                size = _write_png(self.root / relative, crop)
                written.append(self.root / relative)
                row = rows_by_id.get(connector) or {}
                model = row.get("model") or {}
                rows.append(
                    (
                        result_id,
                        connector,
                        str(relative),
                        size,
                        row.get("score"),
                        row.get("evaluation") or "ERROR",
                        model.get("version"),
                        created_at,
                    )
                )
            with self._transaction() as db:
                db.executemany(
                    "INSERT OR REPLACE INTO crops (result_id, connector, path, bytes, score,"
                    " evaluation, model_version, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return len(rows)

    def _room(self) -> bool:
        """Whether free space allows another crop; a change is logged once."""
        paused = self._shortfall() > 0
        if paused != self._paused:
            self._paused = paused
            report = log.warning if paused else log.info
            report("crops_paused" if paused else "crops_resumed", floor=self.min_free_bytes)
        return not paused

    def _shortfall(self) -> int:
        """Bytes missing to the free-space floor on the state filesystem (0: enough room)."""
        if not self.min_free_bytes:
            return 0
        return max(0, self.min_free_bytes - free_bytes(self.root))

    def total_bytes(self) -> int:
        """Bytes of every indexed crop file."""
        return int(self._query("SELECT COALESCE(SUM(bytes), 0) FROM crops")[0][0])

    def count(self) -> int:
        """How many crops are indexed."""
        return int(self._query("SELECT COUNT(*) FROM crops")[0][0])

    def prune(
        self, max_age_days: float, max_bytes: int, now: dt.datetime | None = None, limit: int = 500
    ) -> PruneResult:
        """Remove up to `limit` crops: past the age first, then the oldest (unconfirmed first)
        while over `max_bytes` or below the free-space floor."""
        now = now or dt.datetime.now(dt.UTC)
        cutoff = (now - dt.timedelta(days=max_age_days)).isoformat(timespec="milliseconds")
        cutoff = cutoff.replace("+00:00", "Z")
        victims = self._query(
            "SELECT rowid, path, bytes FROM crops WHERE created_at < ? ORDER BY created_at LIMIT ?",
            (cutoff, limit + 1),
        )
        more = len(victims) > limit
        victims = victims[:limit]
        taken_bytes = sum(v[2] for v in victims)
        excess = max(self.total_bytes() - max_bytes, self._shortfall()) - taken_bytes
        for confirmed in (False, True):
            if excess <= 0 or len(victims) >= limit:
                break
            taken = {v[0] for v in victims}
            rows = self._query(
                f"SELECT rowid, path, bytes FROM crops WHERE {'' if confirmed else 'NOT '}"
                f"{_CONFIRMED} ORDER BY created_at LIMIT ?",
                (limit + len(taken),),
            )
            for row in rows:
                if excess <= 0 or len(victims) >= limit:
                    break
                if row[0] not in taken:
                    victims.append(row)
                    excess -= row[2]
        more = more or (excess > 0 and len(victims) >= limit)  # else: no crop left to remove
        self._remove(victims)
        if victims:
            log.info("crops_pruned", removed=len(victims), freed=sum(v[2] for v in victims))
        return PruneResult(len(victims), sum(v[2] for v in victims), more)

    def _remove(self, victims: list[tuple]) -> None:
        folders = set()
        for _, relative, _ in victims:
            path = self.root / relative
            path.unlink(missing_ok=True)
            folders.add(path.parent)
        with self._transaction() as db:
            db.executemany("DELETE FROM crops WHERE rowid = ?", [(v[0],) for v in victims])
        for folder in folders:
            with contextlib.suppress(OSError):  # not empty: other crops of that day remain
                folder.rmdir()

    def labelled(self, connector: str) -> list[LabelledCrop]:
        """A connector's kept crops that were confirmed, each with its latest confirmation."""
        rows = self._query(
            "SELECT c.result_id, c.connector, c.path, c.score, c.evaluation, c.model_version,"
            " c.created_at, f.label, f.confirmed_by, f.at FROM crops c"
            " JOIN confirmations f ON f.result_id = c.result_id AND f.connector = c.connector"
            " WHERE c.connector = ? AND f.id = (SELECT MAX(id) FROM confirmations g"
            " WHERE g.result_id = c.result_id AND g.connector = c.connector)"
            " ORDER BY c.created_at, c.result_id",
            (connector,),
        )
        return [
            LabelledCrop(
                KeptCrop(r[0], r[1], self.root / r[2], r[3], r[4], r[5], r[6]), r[7], r[8], r[9]
            )
            for r in rows
        ]

    def kept(self, result_id: str) -> list[KeptCrop]:
        """The crops kept for one inspection."""
        rows = self._query(
            "SELECT result_id, connector, path, score, evaluation, model_version, created_at"
            " FROM crops WHERE result_id = ? ORDER BY connector",
            (result_id,),
        )
        return [KeptCrop(r[0], r[1], self.root / r[2], *r[3:]) for r in rows]


def _write_png(path: Path, crop: np.ndarray) -> int:
    """Write a PNG via a temporary name (no half files); returns its size in bytes."""
    data = encode_png(crop, compression=PNG_COMPRESSION)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, data)
    return len(data)
