"""The one way the product opens `journal.sqlite`: autocommit, shared between threads, waiting
on a busy file, foreign keys on; or read-only, for checks, for copying out of a damaged file and
for the console's pages.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

BUSY_TIMEOUT_MS = 10_000


def connect(path: Path, *, read_only: bool = False) -> sqlite3.Connection:
    """A connection to the SQLite file at `path` (read-only: through a `mode=ro` URI)."""
    if read_only:
        uri = f"{Path(path).resolve().as_uri()}?mode=ro"
        db = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    else:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    db.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    db.execute("PRAGMA foreign_keys=ON")
    return db
