"""`edge-inspect train`: one connector's model, from its crop folder to an active bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from trainer.commands.options import (
    add_training_arguments,
    run_guarded,
    training_settings,
)
from trainer.train_all import rois_for
from trainer.train_connector import train_connector


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="DIR/crops/<connector>")
    parser.add_argument("--out", type=Path, required=True, help="models folder")
    parser.add_argument("--connector", help="connector id (default: the data folder's name)")
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        settings = training_settings(args)
        connector = args.connector or Path(args.data).resolve().name
        outcome = train_connector(
            args.data,
            args.out,
            settings,
            connector=connector,
            roi=rois_for(settings).get(connector),
            activate_bundle=not args.no_activate,
        )
        m = outcome.metrics
        print(
            f"{outcome.connector} {outcome.version}: AUROC {m.get('image_auroc')}, "
            f"false-reject {m.get('false_reject_rate')}, recall {m.get('recall')}, "
            f"recall on synthetic defects {m.get('synthetic_recall')} -> "
            f"{outcome.bundle_dir}"
        )
        print(f"model input {m.get('input_size')} px: {m.get('input_size_reason')}")
        return 0

    return run_guarded("edge-inspect train", body)
