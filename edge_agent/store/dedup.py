"""Inputs whose content the journal already holds: filed without a second inspection."""

from __future__ import annotations

import structlog

from edge_agent.contracts.verdict import ERROR, NOT_DECIDABLE
from edge_agent.inputs.drop_folder import DropFile, finish
from edge_agent.store.journal import Journal

log = structlog.get_logger()


def file_if_seen(journal: Journal, drop: DropFile) -> bool:
    """File an input already journaled and return True; False for new content.

    The same path journaled before is a board whose verdict was committed just before a crash
    (it is in the outbox): it is filed as its verdict says. Another path is a duplicate.
    """
    earlier = journal.find_by_source_sha256(drop.sha256)
    if earlier is None:
        return False
    result_id, source_path, evaluation = earlier
    if source_path == str(drop.path):
        log.info("filed after restart", path=drop.path.name, result_id=result_id)
        failed = evaluation in (ERROR, NOT_DECIDABLE)
        finish(drop, "failed" if failed else "processed", evaluation if failed else None)
    else:
        log.info("duplicate", path=drop.path.name, result_id=result_id)
        finish(drop, "duplicate", f"same content as {result_id}")
    return True
