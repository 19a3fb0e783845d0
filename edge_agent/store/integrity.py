"""Whether the journal file is intact: SQLite's `quick_check` (at start) and `integrity_check`
(scheduled, and `edge-inspect journal check`), answered as a list of problems in plain words."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from edge_agent.store.sqlite_files import connect

MAX_PROBLEMS = 20
REMEDY = (
    "stop the agent and run `edge-inspect journal recover --config <station config.toml>` "
    "(readable rows go to a fresh journal, the damaged file is kept beside it)"
)


def journal_problems(path: Path, *, quick: bool = False) -> list[str]:
    """What SQLite finds wrong with the file (quick: page structure only); [] when intact."""
    if not Path(path).is_file():
        return [f"no such file: {path}"]
    try:
        db = connect(path, read_only=True)
    except sqlite3.Error as exc:
        return [f"cannot open: {exc}"]
    try:
        return problems_of(db, quick=quick)
    finally:
        db.close()


def problems_of(db: sqlite3.Connection, *, quick: bool = False) -> list[str]:
    """`journal_problems` on an open connection."""
    pragma = "quick_check" if quick else "integrity_check"
    try:
        rows = db.execute(f"PRAGMA {pragma}({MAX_PROBLEMS})").fetchall()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    lines = [line.strip() for row in rows for line in str(row[0]).splitlines()]
    problems = [line for line in lines if line and not line.startswith("***")]
    return [] if problems == ["ok"] else problems


def describe_damage(path: Path, problems: list[str]) -> str:
    """One line: the file, the first problems SQLite named, and what to do."""
    shown = "; ".join(problems[:3]) + (f" (+{len(problems) - 3} more)" if len(problems) > 3 else "")
    return f"{path}: journal damaged ({shown}): {REMEDY}"
