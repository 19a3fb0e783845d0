"""The highest session number ever used, kept outside SQLite beside the journal.

A journal that lost its newest writes (its `-wal` file removed after a power cut or by hand)
forgets its newest sessions too; SQLite would then hand out their numbers again and a
`(session, seq)` pair would name two verdicts. The mark is written atomically (fsync'd file and
folder) before a session is used, so a new session is always above any ever used.
"""

from __future__ import annotations

import json
from pathlib import Path

import structlog

from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.clock import utc_now

log = structlog.get_logger()

SUFFIX = ".session-mark"


def mark_path(journal_path: Path) -> Path:
    """Where the mark of this journal lives: `<journal>.session-mark`."""
    return Path(journal_path).with_name(Path(journal_path).name + SUFFIX)


def highest_session(journal_path: Path) -> int:
    """The highest session number marked (0 when no mark exists or it cannot be read)."""
    path = mark_path(journal_path)
    try:
        return int(json.loads(path.read_text(encoding="utf-8"))["session"])
    except FileNotFoundError:
        return 0
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning(
            "session mark unreadable: session numbers follow the journal",
            path=str(path),
            error=str(exc),
        )
        return 0


def mark_session(journal_path: Path, session: int) -> None:
    """Record `session` as used (durably, before it is used); a mark that cannot be written
    (a full disk) is logged at ERROR and the session goes on: the line does not stop for it."""
    try:
        write_json_atomic(mark_path(journal_path), {"session": session, "marked_at": utc_now()})
    except OSError as exc:
        log.error(
            "session mark not written: after a lost -wal this session number could recur",
            path=str(mark_path(journal_path)),
            session=session,
            error=str(exc),
        )
