"""`edge-inspect train-all`: one model per connector of a crop data set, then a summary table."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.commands.options import add_training_arguments, run_guarded, training_settings
from trainer.train_all import train_all, write_summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="DIR/crops")
    parser.add_argument("--out", type=Path, required=True, help="models folder")
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        rows = train_all(args.data, args.out, training_settings(args), not args.no_activate)
        print(write_summary(args.out, rows))
        return 1 if any(row.get("error") for row in rows) else 0

    return run_guarded("edge-inspect train-all", body)
