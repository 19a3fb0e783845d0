"""`edge-inspect retrain-layout --config C`: carry out the set-up page's pending "save and
retrain" request (`trainer/retrain/layout.py`).

`edge-inspect trainer` runs it when a request is pending (checked every minute).
Exit code 0 when it was done or none was pending, 1 when it failed or another retraining run
holds the lock, 2 for a bad config.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edge_agent.ops.logs import configure_logging
from trainer.retrain.job import RetrainBusy
from trainer.retrain.layout import run_request
from trainer.retrain.runs import lower_priority
from trainer.settings import load_config_for_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="station config (TOML)")


def run(args: argparse.Namespace) -> int:
    config = load_config_for_command("edge-inspect retrain-layout", args.config)
    if config is None:
        return 2
    configure_logging(config.logging.level, config.logging.format)
    lower_priority(config.retrain.nice, config.retrain.threads)
    try:
        status = run_request(args.config, config)
    except RetrainBusy as exc:
        print(f"edge-inspect retrain-layout: {exc}", file=sys.stderr)
        return 1
    if status is None:
        print("no save-and-retrain request is pending")
        return 0
    print(status["message"])
    return 0 if status["state"] == "done" else 1
