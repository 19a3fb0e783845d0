"""`edge-inspect recalibrate --config C [--connector ID] [--dry-run]`: thresholds from the line.

Each enabled connector (or those named) gets a threshold from its active version's own scores
in the journal and the operators' confirmations (`trainer/retrain/recalibrate.py`); a change is
gated and rolled out like a retrained model, or with `--dry-run` only proposed (the console's
connector page shows the proposal either way). The nightly job does the same for every
connector it did not retrain. Exit 0 when every connector ended, 1 when another retraining run
holds the lock, 2 for a bad config or option.
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
    parser.add_argument("--config", type=Path, help="station config (TOML)")
    parser.add_argument(
        "--connector", action="append", help="only this connector (repeatable; default: all)"
    )
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="propose only: write the proposal for the console, install nothing",
    )


def run(args: argparse.Namespace) -> int:
    config = load_config_for_command("edge-inspect recalibrate", args.config)
    if config is None:
        return 2
    configure_logging(config.logging.level, config.logging.format)
    lower_priority(config.retrain.nice, config.retrain.threads)
    try:
        results = RetrainJob(config, trigger="recalibrate").recalibrate(
            args.connector, dry_run=args.dry_run
        )
    except ValueError as exc:
        print(f"edge-inspect recalibrate: error: {exc}", file=sys.stderr)
        return 2
    except RetrainBusy as exc:
        print(f"edge-inspect recalibrate: {exc}", file=sys.stderr)
        return 1
    for r in results:
        numbers = (
            f" (threshold {r.current_threshold:.4g} -> {r.proposed_threshold:.4g})"
            if r.proposed_threshold is not None and r.current_threshold is not None
            else ""
        )
        print(f"{r.connector}: {r.outcome} {r.version or ''}{numbers} - {r.reason}")
    return 0
