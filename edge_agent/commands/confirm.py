"""`edge-inspect confirm RESULT_ID [--connector ID] OK|KO`: an operator's label, journaled."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.comms.confirmations import Confirmation, apply_confirmation
from edge_agent.contracts.config import load_config_for_command
from edge_agent.ops.user_name import current_user
from edge_agent.store.crop_store import JOURNAL_FILE
from edge_agent.store.journal import LABELS, Journal, JournalError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("result_id", help="the verdict's result_id")
    parser.add_argument("label", type=str.upper, choices=LABELS, help="OK or KO")
    parser.add_argument(
        "--connector", help="connector id (default: every scored one for OK, the NOK ones for KO)"
    )
    parser.add_argument("--by", help="who confirms (default: your login name, else uid-<n>)")
    parser.add_argument("--config", type=Path, help="station config (TOML)")


def run(args: argparse.Namespace) -> int:
    config = load_config_for_command("edge-inspect confirm", args.config)
    if config is None:
        return 2
    path = config.paths.state / JOURNAL_FILE
    if not path.is_file():
        print(
            f"edge-inspect confirm: error: {path}: no journal (has the agent run?)", file=sys.stderr
        )
        return 2
    try:
        journal = Journal(path)
    except JournalError as exc:
        print(f"edge-inspect confirm: error: {exc}", file=sys.stderr)
        return 2
    by = args.by or current_user()
    try:
        confirmation = Confirmation(args.result_id, args.connector, args.label, f"cli:{by}")
        connectors = apply_confirmation(journal, confirmation)
    except ValueError as exc:
        print(f"edge-inspect confirm: error: {exc}", file=sys.stderr)
        return 2
    finally:
        journal.close()
    print(f"{args.result_id}: {', '.join(connectors)} confirmed {args.label} by {by}")
    return 0
