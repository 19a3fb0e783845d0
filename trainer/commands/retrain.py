"""`edge-inspect retrain --now [--connector ID] [--early]`: the nightly retraining job, once, now.

What the systemd timer runs, and what `edge-inspect trainer` starts on its schedule (and with
`--early` when a drift alarm asks for an early retrain).
Exit code 0 when every connector ended (installed, candidate, refused or unchanged),
1 when one failed or another run holds the lock, 2 for a bad config or option.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.ops.logs import configure_logging
from trainer.retrain.job import RetrainBusy, RetrainJob
from trainer.retrain.runs import lower_priority
from trainer.settings import load_config_for_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--now", action="store_true", help="run the job now (required)")
    parser.add_argument("--config", type=Path, help="station config (TOML)")
    parser.add_argument(
        "--connector", action="append", help="only this connector (repeatable; default: all)"
    )
    parser.add_argument("--force", action="store_true", help="train even without new data")
    parser.add_argument(
        "--early",
        action="store_true",
        help="only connectors whose drift alarm asks for an early retrain "
        "(drift.retrain_after_confirmed of their crops since the alarm confirmed)",
    )
    parser.add_argument("--trigger", default="manual", help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    if not args.now:
        print(
            "edge-inspect retrain: --now is required (`edge-inspect trainer` runs the schedule)",
            file=sys.stderr,
        )
        return 2
    config = load_config_for_command("edge-inspect retrain", args.config)
    if config is None:
        return 2
    configure_logging(config.logging.level, config.logging.format)
    lower_priority(config.retrain.nice, config.retrain.threads)
    try:
        job = RetrainJob(config, trigger=args.trigger)
        report = job.run(args.connector, force=args.force, early=args.early)
    except ValueError as exc:
        print(f"edge-inspect retrain: error: {exc}", file=sys.stderr)
        return 2
    except RetrainBusy as exc:
        print(f"edge-inspect retrain: {exc}", file=sys.stderr)
        return 1
    for result in report.results:
        print(f"{result.connector}: {result.outcome} {result.version or ''} - {result.reason}")
    return 0 if report.ok else 1
