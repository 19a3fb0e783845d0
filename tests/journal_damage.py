"""Real damage for journal tests: garbage written over whole pages of a real SQLite file."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

GARBAGE = b"\xde\xad\xbe\xef"


def page_size(path: Path) -> int:
    return int.from_bytes(Path(path).read_bytes()[16:18], "big")


def root_page(path: Path, table: str) -> int:
    """The root page number of a table or index (read before the damage)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        return db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[
            0
        ]


def leaf_pages(path: Path, table: str) -> list[int]:
    """The leaf pages of a table, in page order (SQLite's dbstat table)."""
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        rows = db.execute(
            "SELECT pageno FROM dbstat WHERE name = ? AND pagetype = 'leaf' ORDER BY pageno",
            (table,),
        ).fetchall()
    return [row[0] for row in rows]


def damage_pages(path: Path, first: int, count: int = 1) -> None:
    """Overwrite pages `first`.. (numbered from 1) with garbage, in place, synced."""
    size = page_size(path)
    with open(path, "r+b") as handle:
        handle.seek((first - 1) * size)
        handle.write(GARBAGE * (size * count // len(GARBAGE)))
        handle.flush()
