"""The journal as the console sees it: a read-only SQLite connection (WAL readers never block
the agent), queries for the feed, one board, the review queue, a connector's recent scores and
the drift monitor's states and history (`drift_states`, `drift_history`; none in an older journal).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.store.journal import inspection_record
from edge_agent.store.sqlite_files import connect

RESULT_ID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
EVALUATIONS = ("OK", "NOK", "ERROR", "NOT_DECIDABLE")
BORDERLINE = 0.8  # an OK connector scoring at least this share of its threshold is reviewed
REVIEW_WINDOW = 2000  # boards scanned for the review queue, newest first
CAPTURE = "capture"  # the drift subject of the whole photo (every other subject is a connector)


@dataclass(frozen=True)
class FeedFilter:
    """What the feed shows; every field optional. Times are ISO 8601 UTC prefixes."""

    evaluation: str | None = None
    connector: str | None = None
    part_id: str | None = None
    since: str | None = None
    until: str | None = None

    def where(self) -> tuple[str, list[Any]]:
        clauses, args = [], []
        if self.evaluation:
            clauses.append("evaluation = ?")
            args.append(self.evaluation)
        if self.connector:
            clauses.append(
                "EXISTS (SELECT 1 FROM json_each(verdict_json, '$.connectors') j"
                " WHERE json_extract(j.value, '$.id') = ?"
                " AND json_extract(j.value, '$.evaluation') != 'OK')"
            )
            args.append(self.connector)
        if self.part_id:
            clauses.append("part_id LIKE ? ESCAPE '\\'")
            escaped = self.part_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            args.append(f"%{escaped}%")
        if self.since:
            clauses.append("created_at >= ?")
            args.append(self.since)
        if self.until:
            clauses.append("created_at < ?")
            args.append(self.until)
        return " AND ".join(clauses) or "1", args


@dataclass(frozen=True)
class BoardRow:
    """One line of the feed."""

    cursor: int
    result_id: str
    part_id: str | None
    created_at: str
    evaluation: str
    flagged: list[tuple[str, str]]
    total_ms: float | None
    historical: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "cursor": self.cursor,
            "result_id": self.result_id,
            "part_id": self.part_id,
            "created_at": self.created_at,
            "evaluation": self.evaluation,
            "flagged": [{"id": c, "evaluation": e} for c, e in self.flagged],
            "total_ms": self.total_ms,
            "historical": self.historical,
        }


@dataclass(frozen=True)
class ReviewItem:
    """A connector of a board that nobody confirmed yet and a person should look at."""

    result_id: str
    part_id: str | None
    created_at: str
    connector: str
    evaluation: str
    score: float | None
    threshold: float | None
    version: str | None
    drift: bool = False  # put first: the connector's drift alarm is on

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ReviewQueue:
    """The first connectors to review and the number of all of them."""

    items: list[ReviewItem]
    total: int

    def as_dict(self) -> dict[str, Any]:
        return {"items": [item.as_dict() for item in self.items], "total": self.total}


@dataclass(frozen=True)
class DriftState:
    """A subject's (a connector's or "capture") current drift state, as the agent keeps it."""

    subject: str
    state: str  # ok | warning | alarm
    reason: str
    since: str
    measure: str | None
    statistic: float | None
    boards: int

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class DriftPoint:
    """One row of a subject's drift history: its statistic (1.0 = alarm level) and state."""

    at: str
    measure: str | None
    statistic: float
    state: str


@dataclass
class ScoreRow:
    """One board's row for a connector."""

    created_at: str
    evaluation: str
    score: float | None
    threshold: float | None
    version: str | None


@dataclass
class JournalCounts:
    """Totals for the health page."""

    boards_last_hour: int = 0
    by_evaluation: dict[str, int] = field(default_factory=dict)
    last_verdict_at: str | None = None
    outbox_depth: int | None = None
    confirmations: int = 0
    to_review: int = 0


def _board_row(row: sqlite3.Row) -> BoardRow:
    verdict = json.loads(row["verdict_json"])
    flagged = [
        (c.get("id", "?"), c.get("evaluation", "ERROR"))
        for c in verdict.get("connectors", [])
        if c.get("evaluation") != "OK"
    ]
    return BoardRow(
        cursor=row["rowid"],
        result_id=row["result_id"],
        part_id=row["part_id"],
        created_at=row["created_at"],
        evaluation=row["evaluation"],
        flagged=flagged,
        total_ms=(verdict.get("processing_ms") or {}).get("total"),
        historical=bool(verdict.get("historical")),
    )


def _item(row: sqlite3.Row, c: dict[str, Any], drift: bool = False) -> ReviewItem:
    """The review item of connector row `c` of the board `row`."""
    return ReviewItem(
        result_id=row["result_id"],
        part_id=row["part_id"],
        created_at=row["created_at"],
        connector=c.get("id"),
        evaluation=c.get("evaluation"),
        score=c.get("score"),
        threshold=c.get("threshold"),
        version=(c.get("model") or {}).get("version"),
        drift=drift,
    )


def _utc(moment: str) -> str:
    """An ISO 8601 time as the journal writes it (UTC, milliseconds, `Z`): comparable as text."""
    try:
        parsed = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    except ValueError:
        return moment
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    stamp = parsed.astimezone(dt.UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


class JournalReader:
    """Opens `journal.sqlite` read-only for each query; a missing journal reads as empty.

    `drift_head`: at most this many unconfirmed crops of each connector in drift alarm go first
    in the review queue (`drift.review_head_boards`; 0: none)."""

    def __init__(self, path: Path, drift_head: int = 0) -> None:
        self.path = Path(path)
        self.drift_head = drift_head

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = connect(self.path, read_only=True)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def _rows(self, sql: str, args: list[Any] | tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if not self.path.is_file():
            return []
        with self._connect() as db:
            try:
                return db.execute(sql, args).fetchall()
            except sqlite3.OperationalError as exc:
                if "no such table" in str(exc):
                    return []
                raise

    def feed(
        self,
        where: FeedFilter,
        *,
        before: int | None = None,
        after: int | None = None,
        limit: int = 50,
    ) -> list[BoardRow]:
        """Boards newest first (journal order); `before`/`after` are cursors from earlier rows."""
        clause, args = where.where()
        if before is not None:
            clause += " AND rowid < ?"
            args.append(before)
        if after is not None:
            clause += " AND rowid > ?"
            args.append(after)
        rows = self._rows(
            "SELECT rowid, result_id, part_id, created_at, evaluation, verdict_json"
            f" FROM inspections WHERE {clause} ORDER BY rowid DESC LIMIT ?",
            [*args, limit],
        )
        return [_board_row(row) for row in rows]

    def inspection(self, result_id: str) -> dict[str, Any] | None:
        """One board: its row, verdict, confirmations and kept crops (relative paths)."""
        if not RESULT_ID.match(result_id):
            return None
        record = inspection_record(self._rows, result_id)
        if record is None:
            return None
        record["crops"] = {
            r["connector"]: r["path"]
            for r in self._rows(
                "SELECT connector, path FROM crops WHERE result_id = ?", (result_id,)
            )
        }
        return record

    def latest_inspected(self, limit: int) -> list[dict[str, Any]]:
        """The newest boards that were aligned and scored (their photos can be cut again)."""
        rows = self._rows(
            "SELECT result_id, camera, source_path, source_sha256, created_at FROM inspections"
            " WHERE evaluation IN ('OK', 'NOK') ORDER BY rowid DESC LIMIT ?",
            (limit,),
        )
        return [dict(r) for r in rows]

    def _to_review(self) -> Iterator[ReviewItem]:
        """What "to review" means, everywhere: first the drift head (`_drift_head`), then the
        connectors of recent boards that nobody confirmed, NOK or OK at least `BORDERLINE` of
        the threshold, newest first; a re-shot board (`duplicate_of`) is not among them, its
        original is."""
        head = list(self._drift_head())
        yield from head
        taken = {(item.result_id, item.connector) for item in head}
        rows = self._rows(
            "SELECT i.result_id, i.part_id, i.created_at, i.verdict_json FROM inspections i"
            " WHERE i.evaluation IN ('OK', 'NOK')"
            " AND json_extract(i.verdict_json, '$.duplicate_of') IS NULL"
            " ORDER BY i.rowid DESC LIMIT ?",
            (REVIEW_WINDOW,),
        )
        confirmed = {
            (r["result_id"], r["connector"])
            for r in self._rows("SELECT result_id, connector FROM confirmations")
        }
        for row in rows:
            for c in json.loads(row["verdict_json"]).get("connectors", []):
                score, threshold = c.get("score"), c.get("threshold")
                wanted = c.get("evaluation") == "NOK" or (
                    c.get("evaluation") == "OK"
                    and score is not None
                    and threshold
                    and score >= BORDERLINE * threshold
                )
                key = (row["result_id"], c.get("id"))
                if wanted and key not in confirmed and key not in taken:
                    yield _item(row, c)

    def _drift_head(self) -> Iterator[ReviewItem]:
        """Each connector in drift alarm: its kept, scored, unconfirmed crops of boards inspected
        since the alarm began, the newest `drift_head` of them; all of them newest first. What
        the operators confirm here is what an early retrain learns from."""
        found: list[tuple[int, ReviewItem]] = []
        for connector, since in self.drift_alarms().items() if self.drift_head > 0 else ():
            rows = self._rows(
                "SELECT i.rowid, i.result_id, i.part_id, i.created_at, i.verdict_json"
                " FROM crops c JOIN inspections i ON i.result_id = c.result_id"
                " WHERE c.connector = ? AND c.evaluation IN ('OK', 'NOK')"
                " AND c.created_at >= ? AND i.created_at >= ?"
                " AND json_extract(i.verdict_json, '$.duplicate_of') IS NULL"
                " AND NOT EXISTS (SELECT 1 FROM confirmations f"
                "   WHERE f.result_id = c.result_id AND f.connector = c.connector)"
                " ORDER BY i.rowid DESC LIMIT ?",
                (connector, since, since, self.drift_head),
            )
            for row in rows:
                verdict = json.loads(row["verdict_json"])
                c = next(c for c in verdict.get("connectors", []) if c.get("id") == connector)
                found.append((row["rowid"], _item(row, c, drift=True)))
        return (item for _, item in sorted(found, key=lambda f: f[0], reverse=True))

    def review_queue(self, limit: int = 200) -> ReviewQueue:
        """The first `limit` connectors to review and how many there are in all."""
        items, total = [], 0
        for item in self._to_review():
            total += 1
            if len(items) < limit:
                items.append(item)
        return ReviewQueue(items, total)

    def connector_rows(self, connector: str, since: str, limit: int = 5000) -> list[ScoreRow]:
        """The connector's row of every board since `since` (ISO UTC), oldest first."""
        rows = self._rows(
            "SELECT created_at, json_extract(j.value, '$.evaluation') AS evaluation,"
            " json_extract(j.value, '$.score') AS score,"
            " json_extract(j.value, '$.threshold') AS threshold,"
            " json_extract(j.value, '$.model.version') AS version"
            " FROM (SELECT rowid, created_at, verdict_json FROM inspections"
            "       WHERE created_at >= ? ORDER BY rowid DESC LIMIT ?) i,"
            " json_each(i.verdict_json, '$.connectors') j"
            " WHERE json_extract(j.value, '$.id') = ? ORDER BY i.rowid",
            (since, limit, connector),
        )
        return [ScoreRow(**dict(r)) for r in rows]

    def line_scores(self, connector: str, version: str, limit: int) -> list[tuple[float, str]]:
        """(score, latest confirmed label or '') of the connector's newest `limit` OK/NOK rows
        under model `version`, repeats of known content left out (they would count twice)."""
        rows = self._rows(
            "SELECT i.result_id, json_extract(j.value, '$.score') AS score"
            " FROM inspections i, json_each(i.verdict_json, '$.connectors') j"
            " WHERE i.evaluation IN ('OK', 'NOK')"
            " AND json_extract(i.verdict_json, '$.duplicate_of') IS NULL"
            " AND json_extract(j.value, '$.id') = ?"
            " AND json_extract(j.value, '$.model.version') = ?"
            " AND json_extract(j.value, '$.evaluation') IN ('OK', 'NOK')"
            " ORDER BY i.rowid DESC LIMIT ?",
            (connector, version, limit),
        )
        labels = {
            r["result_id"]: r["label"]
            for r in self._rows(
                "SELECT result_id, label FROM confirmations WHERE connector = ? ORDER BY id",
                (connector,),
            )
        }
        return [
            (float(r["score"]), labels.get(r["result_id"], ""))
            for r in rows
            if r["score"] is not None
        ]

    def drift_states(self) -> dict[str, DriftState]:
        """Every subject's current drift state; none before the agent's drift monitor ran."""
        rows = self._rows(
            "SELECT subject, state, reason, since, measure, statistic, boards FROM drift_states"
            " ORDER BY subject"
        )
        return {r["subject"]: DriftState(**dict(r)) for r in rows}

    def drift_alarms(self) -> dict[str, str]:
        """Connector -> when its alarm began (journal time format), for every connector in
        drift alarm (the capture is not a connector: its crops are every connector's)."""
        return {
            subject: _utc(state.since)
            for subject, state in self.drift_states().items()
            if state.state == "alarm" and subject != CAPTURE
        }

    def confirmed_since(self, connector: str, since: str) -> int:
        """How many of the connector's kept crops of boards inspected since `since` (journal
        time format) carry a confirmation, whatever its label."""
        rows = self._rows(
            "SELECT COUNT(*) AS n FROM crops c JOIN inspections i ON i.result_id = c.result_id"
            " WHERE c.connector = ? AND c.created_at >= ? AND i.created_at >= ? AND EXISTS"
            " (SELECT 1 FROM confirmations f"
            "  WHERE f.result_id = c.result_id AND f.connector = c.connector)",
            (connector, since, since),
        )
        return rows[0]["n"] if rows else 0

    def drift_history(self, subject: str, limit: int = 2000) -> list[DriftPoint]:
        """The subject's newest `limit` drift history rows, oldest first."""
        rows = self._rows(
            "SELECT at, measure, statistic, state FROM"
            " (SELECT id, at, measure, statistic, state FROM drift_history"
            "  WHERE subject = ? ORDER BY id DESC LIMIT ?) ORDER BY id",
            (subject, limit),
        )
        return [DriftPoint(**dict(r)) for r in rows]

    def drift_warning_level(self, subject: str) -> float | None:
        """The subject's warning level on its statistic's scale (the alarm level is 1.0), as
        the monitor's `detail` states it (`warning_level`); None where it does not."""
        rows = self._rows("SELECT detail FROM drift_states WHERE subject = ?", (subject,))
        try:
            detail = json.loads(rows[0]["detail"]) if rows and rows[0]["detail"] else {}
        except ValueError:
            return None
        level = detail.get("warning_level") if isinstance(detail, dict) else None
        return float(level) if isinstance(level, int | float) and 0 < level < 1 else None

    def counts(self, since: str) -> JournalCounts:
        """Boards since `since` by evaluation, the last verdict, outbox depth, confirmations."""
        counts = JournalCounts()
        for row in self._rows(
            "SELECT evaluation, COUNT(*) AS n FROM inspections WHERE created_at >= ?"
            " GROUP BY evaluation",
            (since,),
        ):
            counts.by_evaluation[row["evaluation"]] = row["n"]
        counts.boards_last_hour = sum(counts.by_evaluation.values())
        last = self._rows("SELECT created_at FROM inspections ORDER BY rowid DESC LIMIT 1")
        counts.last_verdict_at = last[0]["created_at"] if last else None
        depth = self._rows("SELECT COUNT(*) AS n FROM outbox")
        counts.outbox_depth = depth[0]["n"] if depth else None
        confirmed = self._rows("SELECT COUNT(*) AS n FROM confirmations")
        counts.confirmations = confirmed[0]["n"] if confirmed else 0
        counts.to_review = self.review_queue(limit=0).total
        return counts
