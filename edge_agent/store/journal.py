"""The durable record on the line PC: sessions, inspections, confirmations and the MQTT outbox."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.names import is_connector_id
from edge_agent.store.integrity import describe_damage, problems_of
from edge_agent.store.session_mark import highest_session, mark_session
from edge_agent.store.sqlite_files import connect

SCHEMA_VERSION = 4
LABELS = ("OK", "KO")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at TEXT NOT NULL,
    last_seq INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS inspections (
    result_id TEXT PRIMARY KEY,
    session INTEGER NOT NULL REFERENCES sessions(id),
    seq INTEGER NOT NULL,
    part_id TEXT,
    camera TEXT,
    source_uri TEXT,
    source_sha256 TEXT,
    source_path TEXT,
    evaluation TEXT NOT NULL,
    verdict_json TEXT NOT NULL,
    created_at TEXT NOT NULL,
    UNIQUE (session, seq)
);
CREATE INDEX IF NOT EXISTS inspections_source_sha256 ON inspections(source_sha256);
CREATE TABLE IF NOT EXISTS contents (
    source_sha256 TEXT PRIMARY KEY,
    result_id TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    is_json INTEGER NOT NULL,
    created_at TEXT NOT NULL,
    session INTEGER NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result_id TEXT
);
CREATE INDEX IF NOT EXISTS outbox_result_id ON outbox(result_id);
CREATE TABLE IF NOT EXISTS confirmations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    result_id TEXT NOT NULL REFERENCES inspections(result_id),
    connector TEXT NOT NULL,
    label TEXT NOT NULL CHECK (label IN ('OK', 'KO')),
    confirmed_by TEXT NOT NULL,
    at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS confirmations_result_id ON confirmations(result_id);
CREATE TABLE IF NOT EXISTS withdrawn_confirmations (
    id INTEGER PRIMARY KEY,
    result_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    label TEXT NOT NULL,
    confirmed_by TEXT NOT NULL,
    at TEXT NOT NULL,
    withdrawn_by TEXT NOT NULL,
    withdrawn_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS crops (
    result_id TEXT NOT NULL,
    connector TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    score REAL,
    evaluation TEXT NOT NULL,
    model_version TEXT,
    created_at TEXT NOT NULL,
    PRIMARY KEY (result_id, connector)
);
CREATE INDEX IF NOT EXISTS crops_created_at ON crops(created_at);
CREATE TABLE IF NOT EXISTS drift_states (
    subject TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('ok', 'warning', 'alarm')),
    reason TEXT NOT NULL,
    since TEXT NOT NULL,
    measure TEXT,
    statistic REAL,
    value REAL,
    reference REAL,
    boards INTEGER NOT NULL,
    result_id TEXT,
    model_version TEXT,
    detail TEXT
);
CREATE TABLE IF NOT EXISTS drift_history (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    subject TEXT NOT NULL,
    measure TEXT,
    statistic REAL NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS drift_history_at ON drift_history(at);
"""
DRIFT_COLUMNS = (
    "subject",
    "state",
    "reason",
    "since",
    "measure",
    "statistic",
    "value",
    "reference",
    "boards",
    "result_id",
    "model_version",
    "detail",
)


def create_tables(db: sqlite3.Connection) -> None:
    """Create the journal file's missing tables (every table of the file is declared here)."""
    outbox = [row[1] for row in db.execute("PRAGMA table_info(outbox)")]
    if outbox and "result_id" not in outbox:  # schema 2: messages not yet tied to inspections
        db.execute("ALTER TABLE outbox ADD COLUMN result_id TEXT")
    for statement in filter(str.strip, _SCHEMA.split(";")):
        db.execute(statement)


def _tie_outbox_to_inspections(db: sqlite3.Connection) -> None:
    """Schema 2 -> 3: each waiting verdict and heatmap message names its inspection."""
    db.execute(
        "UPDATE outbox SET result_id = json_extract(CAST(payload AS TEXT), '$.result_id')"
        " WHERE result_id IS NULL AND is_json = 1 AND topic LIKE '%/verdict'"
    )
    heatmaps = db.execute(
        "SELECT id, topic FROM outbox WHERE result_id IS NULL AND topic LIKE '%/heatmap/%/%'"
    ).fetchall()
    db.executemany(
        "UPDATE outbox SET result_id = ? WHERE id = ?",
        [(topic.split("/")[-2], row_id) for row_id, topic in heatmaps],
    )


@contextmanager
def immediate_transaction(
    db: sqlite3.Connection, lock: threading.Lock
) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT under `lock`; ROLLBACK on any error, a failed COMMIT's too.

    The transaction always ends: a COMMIT that fails (disk full, I/O error, a deferred
    constraint) leaves SQLite's transaction open unless it is rolled back here.
    """
    with lock:
        db.execute("BEGIN IMMEDIATE")
        try:
            yield db
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:  # SQLite may already have rolled back (SQLITE_FULL, IOERR)
                db.execute("ROLLBACK")
            raise


class JournalError(RuntimeError):
    """The journal file cannot be used as it is; the message names the file."""


@dataclass(frozen=True)
class OutboxMessage:
    """A message to deliver through the outbox."""

    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False
    is_json: bool = False

    def __post_init__(self) -> None:
        if self.qos not in (0, 1, 2):
            raise ValueError(f"outbox message for {self.topic!r}: qos {self.qos} is not 0, 1 or 2")
        if not self.topic or any(c in self.topic for c in "+#"):
            raise ValueError(f"outbox topic {self.topic!r} must be non-empty and wildcard-free")


@dataclass(frozen=True)
class PendingMessage:
    """An outbox row not yet acknowledged by the broker."""

    id: int
    topic: str
    payload: bytes
    qos: int
    retain: bool
    is_json: bool
    session: int
    attempts: int
    created_at: str


def compact_json(data: Any) -> bytes:
    """UTF-8 JSON without whitespace, as stored in the journal and sent over MQTT."""
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class Journal:
    """One SQLite file (WAL, synchronous=FULL) shared by the agent's threads through one lock."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._session: int | None = None
        # Drift rows waiting to ride in the next transaction (`defer_drift`).
        self._drift_waiting: dict[str, dict[str, Any]] = {}
        self._history_waiting: list[dict[str, Any]] = []
        self._db = connect(self.path)
        self._db.row_factory = sqlite3.Row
        try:
            self._prepare()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            raise JournalError(f"{self.path}: not a usable journal: {exc}") from exc
        except JournalError:
            self._db.close()
            raise

    def _prepare(self) -> None:
        problems = problems_of(self._db, quick=True)
        if problems:
            raise JournalError(describe_damage(self.path, problems))
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path}: journal schema {version} is newer than this software's "
                f"{SCHEMA_VERSION}"
            )
        mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if mode.lower() != "wal":
            raise JournalError(f"{self.path}: cannot switch to WAL mode (got {mode!r})")
        self._db.execute("PRAGMA synchronous=FULL")
        with self._transaction():
            create_tables(self._db)
            if version < 2:
                # Schema 1 had no `contents` claims: the first inspection of each content
                # already in the file becomes its claim.
                self._db.execute(
                    "INSERT OR IGNORE INTO contents (source_sha256, result_id)"
                    " SELECT source_sha256, result_id FROM inspections"
                    " WHERE source_sha256 IS NOT NULL ORDER BY session, seq"
                )
            if version < 3:
                _tie_outbox_to_inspections(self._db)
            # Schema 4 added the drift tables only (created above).
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        return immediate_transaction(self._db, self._lock)

    def _query(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def close(self) -> None:
        """Close the file; the journal cannot be used afterwards."""
        with self._lock:
            self._db.close()

    @property
    def session(self) -> int | None:
        """The session opened by `start_session`, or None before it."""
        return self._session

    def start_session(self) -> int:
        """Open a new process session; its number is larger than any ever used with this file,
        also those a lost `-wal` took away (the session mark beside the file remembers them)."""
        with self._transaction() as db:
            used = db.execute(
                "SELECT max(coalesce((SELECT max(id) FROM sessions), 0),"
                " coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'sessions'), 0))"
            ).fetchone()[0]
            session = max(used, highest_session(self.path)) + 1
            mark_session(self.path, session)
            db.execute("INSERT INTO sessions (id, started_at) VALUES (?, ?)", (session, utc_now()))
        self._session = session
        return self._session

    def sessions_lost(self) -> int:
        """How many sessions the mark knows of that this file does not (its newest writes lost)."""
        newest = self._query("SELECT coalesce(max(id), 0) FROM sessions")[0][0]
        return max(0, highest_session(self.path) - newest)

    def newest_record(self) -> str | None:
        """When the newest inspection or session of the file was recorded (ISO 8601 UTC)."""
        return (
            self._query(
                "SELECT max(coalesce((SELECT max(created_at) FROM inspections), ''),"
                " coalesce((SELECT max(started_at) FROM sessions), ''))"
            )[0][0]
            or None
        )

    def has_result(self, result_id: str) -> bool:
        """Whether an inspection with this result id is journaled."""
        return bool(self._query("SELECT 1 FROM inspections WHERE result_id = ?", (result_id,)))

    def record_inspection(
        self,
        verdict: dict[str, Any],
        extra_messages: Sequence[OutboxMessage],
        verdict_topic: str,
        source_path: str | None = None,
    ) -> int:
        """Journal a verdict and queue it (QoS 1) with its extra messages, in one transaction.

        Sets verdict["session"] and verdict["seq"] (the next seq of this session) and returns seq.
        The first verdict of a content (source sha256) claims it in `contents` (a primary key,
        so of two copies committed at the same moment exactly one is first); every later one
        gets verdict["duplicate_of"] = the first's result id, in the same transaction. Deferred
        drift rows (`defer_drift`) ride in it.
        """
        if self._session is None:
            raise JournalError(f"{self.path}: start_session() before recording inspections")
        missing = [key for key in ("result_id", "evaluation") if not verdict.get(key)]
        if missing:
            raise ValueError(f"verdict lacks {', '.join(missing)}")
        source = verdict.get("source") or {}
        now = utc_now()
        with self._transaction_with_drift() as db:
            seq = db.execute(
                "UPDATE sessions SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
                (self._session,),
            ).fetchone()[0]
            stamps: dict[str, Any] = {"session": self._session, "seq": seq}
            sha = source.get("sha256")
            if sha:
                claimed = db.execute(
                    "INSERT INTO contents (source_sha256, result_id) VALUES (?, ?)"
                    " ON CONFLICT (source_sha256) DO NOTHING",
                    (sha, verdict["result_id"]),
                ).rowcount
                if not claimed:
                    stamps["duplicate_of"] = db.execute(
                        "SELECT result_id FROM contents WHERE source_sha256 = ?", (sha,)
                    ).fetchone()[0]
            stamped = {**verdict, **stamps}
            verdict_json = compact_json(stamped)
            db.execute(
                "INSERT INTO inspections (result_id, session, seq, part_id, camera, source_uri,"
                " source_sha256, source_path, evaluation, verdict_json, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    verdict["result_id"],
                    self._session,
                    seq,
                    verdict.get("part_id"),
                    verdict.get("camera"),
                    source.get("uri"),
                    source.get("sha256"),
                    source_path,
                    verdict["evaluation"],
                    verdict_json.decode("utf-8"),
                    verdict.get("created_at") or now,
                ),
            )
            verdict_message = OutboxMessage(verdict_topic, verdict_json, qos=1, is_json=True)
            rid = verdict["result_id"]  # ties the messages to the row: retention waits for them
            db.executemany(
                "INSERT INTO outbox (topic, payload, qos, retain, is_json, created_at, session,"
                " result_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    (m.topic, m.payload, m.qos, m.retain, m.is_json, now, self._session, rid)
                    for m in (verdict_message, *extra_messages)
                ],
            )
        verdict.update(stamps)
        return seq

    def record_drift(
        self,
        states: Sequence[dict[str, Any]],
        history: Sequence[dict[str, Any]],
        messages: Sequence[OutboxMessage],
        forget: Sequence[str] = (),
    ) -> None:
        """Write drift state rows (replacing each subject's), history rows and their messages
        now, in one transaction with any deferred ones (`DRIFT_COLUMNS`; history: at, subject,
        measure, statistic, state); the state rows of the `forget` subjects are removed."""
        with self._transaction_with_drift() as db:
            db.executemany("DELETE FROM drift_states WHERE subject = ?", [(s,) for s in forget])
            self._write_drift(db, states, history, messages)

    def defer_drift(
        self, states: Sequence[dict[str, Any]], history: Sequence[dict[str, Any]]
    ) -> None:
        """Drift rows written with the next transaction that carries them (the next board's
        inspection, or `record_drift`): no commit of their own."""
        with self._lock:
            self._drift_waiting.update((row["subject"], row) for row in states)
            self._history_waiting.extend(history)

    @contextmanager
    def _transaction_with_drift(self) -> Iterator[sqlite3.Connection]:
        """A transaction that first writes the deferred drift rows (kept for the next one if
        it fails)."""
        taken: tuple[dict[str, dict[str, Any]], list[dict[str, Any]]] | None = None
        try:
            with self._transaction() as db:
                taken = self._drift_waiting, self._history_waiting
                self._drift_waiting, self._history_waiting = {}, []
                self._write_drift(db, list(taken[0].values()), taken[1], [])
                yield db
        except BaseException:
            if taken is not None:
                with self._lock:
                    self._drift_waiting = taken[0] | self._drift_waiting
                    self._history_waiting = taken[1] + self._history_waiting
            raise

    def _write_drift(
        self,
        db: sqlite3.Connection,
        states: Sequence[dict[str, Any]],
        history: Sequence[dict[str, Any]],
        messages: Sequence[OutboxMessage],
    ) -> None:
        if not (states or history or messages):
            return  # most boards: nothing of the drift monitor's is due
        now = utc_now()
        db.executemany(
            f"INSERT OR REPLACE INTO drift_states ({', '.join(DRIFT_COLUMNS)})"
            f" VALUES ({', '.join('?' * len(DRIFT_COLUMNS))})",
            [tuple(row[c] for c in DRIFT_COLUMNS) for row in states],
        )
        db.executemany(
            "INSERT INTO drift_history (at, subject, measure, statistic, state)"
            " VALUES (?, ?, ?, ?, ?)",
            [(h["at"], h["subject"], h["measure"], h["statistic"], h["state"]) for h in history],
        )
        db.executemany(
            "INSERT INTO outbox (topic, payload, qos, retain, is_json, created_at, session)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (m.topic, m.payload, m.qos, m.retain, m.is_json, now, self._session)
                for m in messages
            ],
        )

    def drift_states(self) -> dict[str, dict[str, Any]]:
        """subject -> its `drift_states` row, as the last run left them."""
        rows = self._query(f"SELECT {', '.join(DRIFT_COLUMNS)} FROM drift_states")
        return {row["subject"]: dict(row) for row in rows}

    def find_from_path(self, sha: str, source_path: str) -> tuple[str, str] | None:
        """(result_id, evaluation) of an inspection of this content read from this path, if any."""
        rows = self._query(
            "SELECT result_id, evaluation FROM inspections"
            " WHERE source_sha256 = ? AND source_path = ? ORDER BY session, seq LIMIT 1",
            (sha, source_path),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def read_from_path_prefix(self, sha: str, path_prefix: str) -> bool:
        """Whether this content was inspected from a file whose path starts with the prefix."""
        rows = self._query(
            "SELECT 1 FROM inspections"
            " WHERE source_sha256 = ? AND substr(source_path, 1, ?) = ? LIMIT 1",
            (sha, len(path_prefix), path_prefix),
        )
        return bool(rows)

    def first_of_content(self, sha: str) -> str | None:
        """The result id that claimed this content (its first verdict), if any."""
        rows = self._query("SELECT result_id FROM contents WHERE source_sha256 = ?", (sha,))
        return rows[0][0] if rows else None

    def inspection(self, result_id: str) -> dict[str, Any] | None:
        """One journalled inspection with its verdict and confirmations, or None."""
        return inspection_record(self._query, result_id)

    def record_confirmation(
        self, result_id: str, connector: str, label: str, by: str, at: str | None = None
    ) -> None:
        """Store an operator's or the MES's OK/KO label for one connector of an inspection."""
        if label not in LABELS:
            raise ValueError(f"confirmation label {label!r} is not one of {', '.join(LABELS)}")
        if not is_connector_id(connector):
            raise ValueError(f"confirmation connector {connector!r} is not a valid connector id")
        if not isinstance(by, str) or not by.strip() or len(by) > 200:
            raise ValueError(f"confirmation 'by' {by!r} must be a non-empty name (200 chars max)")
        if at is not None:
            try:
                dt.datetime.fromisoformat(at)
            except (TypeError, ValueError):
                raise ValueError(f"confirmation time {at!r} is not ISO 8601") from None
        with self._transaction() as db:
            row = db.execute(
                "SELECT verdict_json FROM inspections WHERE result_id = ?", (result_id,)
            ).fetchone()
            if row is None:
                raise ValueError(f"confirmation for unknown result_id {result_id!r}")
            connectors = {c.get("id") for c in json.loads(row[0]).get("connectors", [])}
            if connector not in connectors:
                raise ValueError(
                    f"confirmation for connector {connector!r}, which result {result_id!r} "
                    f"did not inspect (it has {sorted(connectors)})"
                )
            db.execute(
                "INSERT INTO confirmations (result_id, connector, label, confirmed_by, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (result_id, connector, label, by.strip(), at or utc_now()),
            )

    def withdraw_confirmations(
        self, result_id: str, connectors: Sequence[str], label: str, by: str, withdrawn_by: str
    ) -> None:
        """Take back the latest label of each connector (an undo), all or none: each must be
        `label` given by `by`, else ValueError says who labelled it since. The rows move to
        `withdrawn_confirmations` with who took them back and when (the audit trail)."""
        with self._transaction() as db:
            latest = []
            for connector in connectors:
                row = db.execute(
                    "SELECT id, label, confirmed_by FROM confirmations"
                    " WHERE result_id = ? AND connector = ? ORDER BY id DESC LIMIT 1",
                    (result_id, connector),
                ).fetchone()
                if row is None:
                    raise ValueError(f"{connector} of {result_id} has no label to take back")
                if (row["label"], row["confirmed_by"]) != (label, by.strip()):
                    raise ValueError(
                        f"{connector} of {result_id} was labelled {row['label']} by "
                        f"{row['confirmed_by']} since: nothing taken back"
                    )
                latest.append(row["id"])
            for row_id in latest:
                db.execute(
                    "INSERT INTO withdrawn_confirmations SELECT id, result_id, connector, label,"
                    " confirmed_by, at, ?, ? FROM confirmations WHERE id = ?",
                    (withdrawn_by, utc_now(), row_id),
                )
                db.execute("DELETE FROM confirmations WHERE id = ?", (row_id,))

    def pending(self, limit: int, after: int = 0) -> list[PendingMessage]:
        """Up to `limit` unacknowledged outbox rows with id > `after`, oldest first."""
        rows = self._query(
            "SELECT id, topic, payload, qos, retain, is_json, session, attempts, created_at"
            " FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (after, limit),
        )
        return [
            PendingMessage(
                id=row["id"],
                topic=row["topic"],
                payload=bytes(row["payload"]),
                qos=row["qos"],
                retain=bool(row["retain"]),
                is_json=bool(row["is_json"]),
                session=row["session"],
                attempts=row["attempts"],
                created_at=row["created_at"],
            )
            for row in rows
        ]

    def count_attempts(self, message_ids: Iterable[int]) -> None:
        """Note that these outbox rows were handed to the broker once more."""
        with self._transaction() as db:
            db.executemany(
                "UPDATE outbox SET attempts = attempts + 1 WHERE id = ?",
                [(i,) for i in message_ids],
            )

    def acknowledge(self, message_id: int) -> None:
        """Drop one delivered row from the outbox."""
        self.acknowledge_many([message_id])

    def acknowledge_many(self, message_ids: Iterable[int]) -> None:
        """Drop delivered rows from the outbox in one transaction."""
        with self._transaction() as db:
            db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in message_ids])

    def outbox_depth(self) -> int:
        """How many messages wait for the broker's acknowledgement."""
        return self._query("SELECT COUNT(*) FROM outbox")[0][0]

    def last_outbox_id(self) -> int:
        """The highest outbox id ever allocated in this file (0 when none)."""
        rows = self._query("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'")
        return rows[0][0] if rows else 0


Query = Callable[[str, Sequence[Any]], list[sqlite3.Row]]


def inspection_record(query: Query, result_id: str) -> dict[str, Any] | None:
    """One inspection with its verdict and confirmations through `query` (the agent's
    connection or a read-only one), or None; `rowid` orders it among the others."""
    rows = query(
        "SELECT rowid, result_id, session, seq, part_id, camera, source_uri, source_sha256,"
        " source_path, evaluation, verdict_json, created_at FROM inspections"
        " WHERE result_id = ?",
        (result_id,),
    )
    if not rows:
        return None
    record = dict(rows[0])
    record["verdict"] = json.loads(record.pop("verdict_json"))
    record["confirmations"] = [
        dict(row)
        for row in query(
            "SELECT connector, label, confirmed_by AS by, at FROM confirmations"
            " WHERE result_id = ? ORDER BY id",
            (result_id,),
        )
    ]
    return record
