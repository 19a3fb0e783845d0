"""`edge-inspect journal recover`: what can still be read of a damaged journal, copied into a
fresh one; the damaged file is kept beside it under a timestamped name.

Pure Python (no sqlite3 command-line tool): each table of the journal is read in rowid order,
a batch at a time; a batch that cannot be read is read again row by row, and past an unreadable
stretch the next readable rowid is found by probing further and further ahead, every rowid
passed over being tried on its own. Rows keep their rowids, so the console's cursors and the
outbox order stay as they were; session numbers continue above every one ever used (the session
mark beside the journal is kept).

When the damaged bytes are in the first page (the file header and the table of tables), the rows
are read from a copy whose first page is that of a fresh journal: every journal this software
creates lays its tables out on the same root pages, so the fresh page names them where they are.
That is done only when every one of those root pages in the damaged file is a b-tree page of the
right kind (table or index); a file laid out otherwise (made by an older schema's migrations)
gives no rows rather than rows read from the wrong pages.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.contracts.atomic import move_atomic
from edge_agent.store.integrity import journal_problems
from edge_agent.store.journal import Journal
from edge_agent.store.sqlite_files import connect

# Copied in this order (rows that others name first).
TABLES = ("sessions", "inspections", "contents", "outbox", "confirmations", "crops")
BATCH = 500
MAX_PROBES = 100_000
"""Rowids tried one by one across one unreadable stretch, at most."""
SIDE_FILES = ("-wal", "-shm")
BORROWED_SUFFIX = ".schema-borrowed"
_DB_SIZE_OFFSET = 28  # the header's page count, big-endian u32
_PAGE_KINDS = {"table": {0x05, 0x0D}, "index": {0x02, 0x0A}}  # interior, leaf
LOWEST_ROWID = 0
"""The journal's tables number their rows from 1."""


@dataclass
class TableCopy:
    """What one table gave: rows copied, and unreadable stretches skipped (rows lost)."""

    copied: int = 0
    unreadable: int = 0
    error: str | None = None


@dataclass
class Recovery:
    """The outcome: where the damaged file went, what each table gave, the new file's check."""

    kept_as: Path
    schema_borrowed: bool = False
    """The damaged file's first page was unreadable: a fresh journal's first page was used."""
    tables: dict[str, TableCopy] = field(default_factory=dict)
    problems_after: list[str] = field(default_factory=list)

    @property
    def copied(self) -> int:
        return sum(t.copied for t in self.tables.values())


def keep_damaged(path: Path, now: dt.datetime | None = None) -> Path:
    """Rename the journal (with its -wal and -shm) to `<name>.damaged-<UTC time>`."""
    stamp = (now or dt.datetime.now(dt.UTC)).strftime("%Y%m%dT%H%M%SZ")
    kept = path.with_name(f"{path.name}.damaged-{stamp}")
    for n in range(2, 100):  # never over an earlier kept file
        if not any(Path(f"{kept}{s}").exists() for s in ("", *SIDE_FILES)):
            break
        kept = path.with_name(f"{path.name}.damaged-{stamp}-{n}")
    for suffix in SIDE_FILES:  # the side files first: the main file's name is the last to go
        side = Path(f"{path}{suffix}")
        if side.exists():
            move_atomic(side, Path(f"{kept}{suffix}"))
    move_atomic(path, kept)
    return kept


def recover_journal(path: Path) -> Recovery:
    """Move the damaged journal aside and copy its readable rows into a fresh one at `path`.

    The caller makes sure no agent holds the journal (`journal_lock`).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no journal to recover")
    kept = keep_damaged(path)
    recovery = Recovery(kept_as=kept)
    Journal(path).close()  # a fresh journal of the current schema
    source_path = kept
    if not _schema_readable(kept) and _same_layout(kept, path):
        source_path = _with_first_page_of(kept, path)
        recovery.schema_borrowed = True
    source = connect(source_path, read_only=True)
    target = connect(path)
    try:
        target.execute("PRAGMA foreign_keys=OFF")  # a confirmation may have lost its inspection
        for table in TABLES:
            recovery.tables[table] = _copy_table(source, target, table)
    finally:
        source.close()
        target.close()
    if source_path != kept:
        for suffix in ("", *SIDE_FILES):
            Path(f"{source_path}{suffix}").unlink(missing_ok=True)
    _tidy_side_files(kept)
    recovery.problems_after = journal_problems(path)
    return recovery


def _schema_readable(path: Path) -> bool:
    db = connect(path, read_only=True)
    try:
        db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
        return True
    except sqlite3.DatabaseError:
        return False
    finally:
        db.close()


def _same_layout(damaged: Path, fresh: Path) -> bool:
    """Whether each root page of the fresh journal's tables and indexes is a b-tree page of
    the same kind in the damaged file."""
    db = connect(fresh, read_only=True)
    try:
        roots = db.execute(
            "SELECT type, rootpage FROM sqlite_master WHERE type IN ('table', 'index')"
        ).fetchall()
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
    finally:
        db.close()
    with open(damaged, "rb") as handle:
        for kind, root in roots:
            handle.seek((root - 1) * page_size)
            flag = handle.read(1)
            if not flag or flag[0] not in _PAGE_KINDS[kind]:
                return False
    return True


def _with_first_page_of(damaged: Path, fresh: Path) -> Path:
    """A copy of `damaged` whose first page is `fresh`'s, sized for the whole copy."""
    data = bytearray(damaged.read_bytes())
    first = fresh.read_bytes()
    page_size = int.from_bytes(first[16:18], "big") or 65536
    data[:page_size] = first[:page_size]
    pages = (len(data) + page_size - 1) // page_size
    data[_DB_SIZE_OFFSET : _DB_SIZE_OFFSET + 4] = pages.to_bytes(4, "big")
    copy = damaged.with_name(damaged.name + BORROWED_SUFFIX)
    copy.write_bytes(bytes(data))
    return copy


def _copy_table(source: sqlite3.Connection, target: sqlite3.Connection, table: str) -> TableCopy:
    result = TableCopy()
    columns = [row[1] for row in target.execute(f"PRAGMA table_info({table})")]
    try:
        present = {row[1] for row in source.execute(f"PRAGMA table_info({table})")}
    except sqlite3.DatabaseError as exc:
        result.error = f"schema unreadable: {exc}"
        return result
    columns = [c for c in columns if c in present]
    if not columns:
        result.error = "not in the damaged file"
        return result
    names = ", ".join(columns)
    insert = (
        f"INSERT OR IGNORE INTO {table} (rowid, {names})"
        f" VALUES (?, {', '.join('?' for _ in columns)})"
    )
    reader = _RowReader(source, f"SELECT rowid, {names} FROM {table}", result)
    target.execute("BEGIN")
    for row in reader.rows():
        result.copied += target.execute(insert, row).rowcount
    target.execute("COMMIT")
    return result


class _RowReader:
    """The readable rows of one table in rowid order, past unreadable pages."""

    def __init__(self, db: sqlite3.Connection, select: str, result: TableCopy) -> None:
        self.db = db
        self.select = select
        self.result = result

    def _after(self, rowid: int, limit: int) -> list[tuple]:
        return self.db.execute(
            f"{self.select} WHERE rowid > ? ORDER BY rowid LIMIT ?", (rowid, limit)
        ).fetchall()

    def rows(self) -> Iterator[tuple]:
        last = LOWEST_ROWID
        while True:
            try:
                batch = self._after(last, BATCH)
            except sqlite3.DatabaseError:
                batch = self._one_by_one(last)
                if batch is None:
                    return
            if not batch:
                return
            yield from batch
            last = batch[-1][0]

    def _one_by_one(self, last: int) -> list[tuple] | None:
        """Rows after `last` up to the first unreadable one, or the rows found past it;
        None when nothing readable follows."""
        found: list[tuple] = []
        try:
            while True:
                row = self._after(last, 1)
                if not row:
                    return found
                found.append(row[0])
                last = row[0][0]
        except sqlite3.DatabaseError:
            pass
        if found:
            return found
        return self._past_damage(last)

    def _past_damage(self, last: int) -> list[tuple] | None:
        """The rows of the first readable stretch after `last` (probing further ahead each
        time, then every rowid passed over on its own); None when none is found."""
        self.result.unreadable += 1
        step, probes = 1, 0
        ahead: int | None = None
        while probes < 64 and last + step < 2**63:
            probes += 1
            try:
                row = self.db.execute(
                    f"{self.select} WHERE rowid >= ? ORDER BY rowid LIMIT 1", (last + step,)
                ).fetchone()
            except sqlite3.DatabaseError:
                step *= 2
                continue
            ahead = None if row is None else row[0]
            break
        end = ahead if ahead is not None else last + min(step, MAX_PROBES)
        passed: list[tuple] = []
        for rowid in range(last + 1, min(end, last + 1 + MAX_PROBES)):
            try:
                row = self.db.execute(f"{self.select} WHERE rowid = ?", (rowid,)).fetchone()
            except sqlite3.DatabaseError:
                continue
            if row is not None:
                passed.append(row)
        if ahead is not None:
            passed.append(self.db.execute(f"{self.select} WHERE rowid = ?", (ahead,)).fetchone())
        return passed or (None if ahead is None else [])


def _tidy_side_files(kept: Path) -> None:
    """Drop the kept file's index (-shm) and an empty -wal that reading it left behind."""
    for suffix in SIDE_FILES:
        side = Path(f"{kept}{suffix}")
        if side.exists() and (suffix == "-shm" or side.stat().st_size == 0):
            side.unlink()
