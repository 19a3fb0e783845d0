"""`edge-inspect compare`: every detector on every connector, one table of metrics and cost."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import get_args

from trainer.commands.options import run_guarded
from trainer.settings import TrainingSettings, load_config
from trainer.studies.compare import compare, parse_methods, select_connectors, write_comparison


def add_arguments(parser: argparse.ArgumentParser) -> None:
    methods = ", ".join(get_args(TrainingSettings.model_fields["method"].annotation))
    parser.add_argument("--data", type=Path, required=True, help="DIR/crops")
    parser.add_argument(
        "--methods", required=True, help=f"comma-separated, of {methods} (e.g. patchcore,padim)"
    )
    parser.add_argument("--connectors", help="comma-separated subset, e.g. J1,J3 (default: all)")
    parser.add_argument("--config", type=Path, help="station config whose [training] to use")
    parser.add_argument("--out", type=Path, default=Path("compare"), help="output folder (compare)")
    parser.add_argument("--runs", type=int, default=50, help="onnxruntime timings per model (50)")


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        methods = parse_methods(args.methods)  # checked before any training or writing
        folders = select_connectors(args.data, args.connectors)
        base = load_config(args.config).training
        rows = compare(folders, args.out, base, methods, max(1, args.runs))
        print(write_comparison(args.out, rows))
        return 1 if any(row.get("error") for row in rows) else 0

    return run_guarded("edge-inspect compare", body)
