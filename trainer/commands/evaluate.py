"""`edge-inspect evaluate`: score a data set with an installed bundle, through onnxruntime only."""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_agent.contracts.bundle import read_manifest
from trainer.commands.options import run_guarded
from trainer.datasets import load_connector_data, require_test_split
from trainer.evaluation.scoring import evaluate_bundle


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", type=Path, required=True, help="MODELS/<connector>/active")
    parser.add_argument("--data", type=Path, required=True, help="DIR/crops/<connector>")
    parser.add_argument("--out", type=Path, help="report folder (default: reports/<conn>-<ver>)")


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        bundle = args.bundle.resolve()
        manifest = read_manifest(bundle)
        data = load_connector_data(args.data)
        require_test_split(data, args.data)
        out = args.out or Path("reports") / f"{manifest.connector}-{manifest.version}"
        extra = {
            "connector": manifest.connector,
            "version": manifest.version,
            "method": manifest.method,
            "n_train": manifest.training.n_train,
            "train_seconds": manifest.training.seconds,
            "threshold_mode": manifest.calibration.mode,
            "data": str(args.data),
        }
        metrics = evaluate_bundle(bundle, data, out, extra)
        print(
            f"{manifest.connector} {manifest.version} on {args.data}: AUROC "
            f"{metrics.get('image_auroc')}, false-reject {metrics.get('false_reject_rate')}, "
            f"recall {metrics.get('recall')} -> {out}"
        )
        return 0

    return run_guarded("edge-inspect evaluate", body)
