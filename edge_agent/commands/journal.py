"""`edge-inspect journal check|recover`: the journal's integrity, and a fresh journal made of
what a damaged one still holds (the damaged file kept beside it)."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_agent.contracts.config import load_config_for_command
from edge_agent.store.crop_store import JOURNAL_FILE
from edge_agent.store.integrity import REMEDY, journal_problems
from edge_agent.store.journal import JournalError
from edge_agent.store.journal_lock import holding_journal
from edge_agent.store.journal_recovery import recover_journal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=("check", "recover"), help="what to do")
    parser.add_argument("--config", type=Path, required=True, help="station config.toml")


def run(args: argparse.Namespace) -> int:
    config = load_config_for_command(f"edge-inspect journal {args.action}", args.config)
    if config is None:
        return 2
    path = config.paths.state / JOURNAL_FILE
    if not path.is_file():
        print(f"{path}: no journal here")
        return 1
    return check(path) if args.action == "check" else recover(path)


def check(path: Path) -> int:
    """0 when SQLite's integrity_check finds nothing wrong; 1 and the problems otherwise."""
    problems = journal_problems(path)
    if not problems:
        print(f"{path}: ok")
        return 0
    print(f"{path}: damaged, {len(problems)} problem(s) found:")
    for problem in problems:
        print(f"  {problem}")
    print(f"to repair: {REMEDY}")
    return 1


def recover(path: Path) -> int:
    """Copy the readable rows into a fresh journal; refused while an agent holds the journal."""
    try:
        with holding_journal(path, "edge-inspect journal recover"):
            recovery = recover_journal(path)
    except (JournalError, OSError) as exc:
        print(f"journal recover refused: {exc}")
        return 1
    print(f"damaged journal kept as {recovery.kept_as}")
    if recovery.schema_borrowed:
        print("  its first page was unreadable: the tables were found through a fresh journal's")
    for table, copy in recovery.tables.items():
        note = f", {copy.unreadable} unreadable stretch(es) skipped" if copy.unreadable else ""
        note += f" ({copy.error})" if copy.error else ""
        print(f"  {table}: {copy.copied} row(s) copied{note}")
    if recovery.problems_after:
        print(f"{path}: the new journal fails its check: {'; '.join(recovery.problems_after)}")
        return 1
    print(f"{path}: a fresh journal with {recovery.copied} row(s); the agent can start")
    return 0
