"""Inputs journaled before a restart: filed without a second inspection."""

from __future__ import annotations

import structlog

from edge_agent.contracts.verdict import ERROR, NOT_DECIDABLE
from edge_agent.inputs.drop_folder import DropFile
from edge_agent.inputs.filing import file_or_leave
from edge_agent.inputs.names import name_text
from edge_agent.store.journal import Journal

log = structlog.get_logger()


def file_if_seen(journal: Journal, drop: DropFile) -> bool:
    """File an input whose verdict is already journaled and return True; False otherwise.

    The same content journaled from this same path is a board whose verdict was committed just
    before a crash (it is in the outbox): it is filed as its verdict says (a crash between the
    hard link and the unlink of filing left it in both places: the original goes). The same content
    under another name is a new input: it gets its own verdict, which the journal marks with
    `duplicate_of` (see `Journal.record_inspection`).
    """
    earlier = journal.find_from_path(drop.sha256, name_text(drop.path))
    if earlier is None:
        return False
    result_id, evaluation = earlier
    log.info("filed after restart", path=name_text(drop.path.name), result_id=result_id)
    failed = evaluation in (ERROR, NOT_DECIDABLE)
    file_or_leave(
        drop, "failed" if failed else "processed", result_id, evaluation if failed else None
    )
    return True
