"""A start after the journal lost its newest writes (its `-wal` file gone after a power cut or
removed by hand): the inputs filed as handled that have no journal row go back to their folder.

SQLite's main file then holds a consistent prefix of what was committed: every inspection after
the newest one it still has is gone, with its outbox rows, so neither its verdict nor its place
in the journal survives. Filing follows the commit, so an input filed under
`<folder>/<processed|failed>/<day>/<result_id>_...` whose result id the journal does not know,
and which is not older than the journal's newest record by more than the journal's retention
never touches (`journal_retention.MIN_AGE`), lost its row: it is moved back into its drop folder
or inbox, where the watcher inspects it again as a new input. Only the `<result_id>_` prefix of
a filed name is relied on.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import structlog

from edge_agent.contracts.atomic import move_atomic
from edge_agent.contracts.verdict import result_id_ms
from edge_agent.inputs.filing import OUTCOMES, REASON_SUFFIX, SEPARATOR
from edge_agent.store.journal import Journal
from edge_agent.store.journal_retention import MIN_AGE

log = structlog.get_logger()

SHOWN = 5


def unjournaled_inputs(journal: Journal, folders: Mapping[str, Path]) -> list[Path]:
    """Filed inputs whose result id is missing from the journal and young enough to be a loss."""
    newest = journal.newest_record()
    if newest is None and journal.sessions_lost() == 0:
        return []  # a journal that never recorded anything: nothing can have been lost
    since_ms = None
    if newest is not None:
        moment = dt.datetime.fromisoformat(newest.replace("Z", "+00:00")) - MIN_AGE
        since_ms = int(moment.timestamp() * 1000)
    return [
        path
        for folder in folders.values()
        for path, result_id in _filed(Path(folder), since_ms)
        if not journal.has_result(result_id)
    ]


def _filed(folder: Path, since_ms: int | None) -> Iterator[tuple[Path, str]]:
    """(path, result id) of the inputs filed below `folder` from `since_ms` on."""
    first_day = day_of_ms(since_ms) if since_ms is not None else ""
    for outcome in OUTCOMES:
        for day in _entries(folder / outcome):
            if not day.is_dir() or day.name < first_day:
                continue
            for path in _entries(day):
                result_id, sep, _ = path.name.partition(SEPARATOR)
                if not sep or path.name.endswith(REASON_SUFFIX) or not path.is_file():
                    continue
                try:
                    made = result_id_ms(result_id)
                except ValueError:
                    continue
                if since_ms is None or made >= since_ms:
                    yield path, result_id


def _entries(folder: Path) -> list[Path]:
    try:
        return sorted(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def day_of_ms(ms: int) -> str:
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).strftime("%Y-%m-%d")


def return_for_inspection(filed: Path) -> Path:
    """Move a filed input back into its drop folder (its own name again when that is free)."""
    drop_folder = filed.parent.parent.parent
    name = filed.name.partition(SEPARATOR)[2]
    target = drop_folder / name
    if not name or os.path.lexists(target):
        target = drop_folder / filed.name
    move_atomic(filed, target)
    Path(f"{filed}{REASON_SUFFIX}").unlink(missing_ok=True)
    return target


def reinspect_lost_inputs(journal: Journal, folders: Mapping[str, Path]) -> list[Path]:
    """Before a session starts: find inputs whose journal rows were lost and return them to
    their folders to be inspected again; logged with a warning naming how many and why."""
    lost_sessions = journal.sessions_lost()
    lost = unjournaled_inputs(journal, folders)
    returned = []
    for path in lost:
        try:
            returned.append(return_for_inspection(path))
        except OSError as exc:
            log.error(
                "input without a journal row not returned for inspection",
                path=str(path),
                error=str(exc),
            )
    if lost or lost_sessions:
        log.warning(
            "journal lost its newest writes (its -wal file removed or a power cut): inputs "
            "filed as handled without a journal row are inspected again",
            inputs=len(returned),
            sessions_lost=lost_sessions,
            lost_result_ids=[p.name.partition(SEPARATOR)[0] for p in lost[:SHOWN]],
            journal=str(journal.path),
        )
    return returned
