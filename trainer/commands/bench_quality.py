"""`edge-inspect bench-quality`: each method on real solar cells and the synthetic station."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_agent.contracts.config import ConfigError
from trainer.commands.options import run_guarded
from trainer.demo.synth.plan import DEFAULT_BOARDS
from trainer.evaluation.footprint import machine_facts
from trainer.settings import load_config
from trainer.studies.compare import parse_methods, select_connectors
from trainer.studies.quality import (
    DATA_SETS,
    bench_quality,
    build_cells,
    build_station,
    write_quality,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--methods", help="comma-separated (default: the configured training.method)"
    )
    parser.add_argument(
        "--data-sets", default=",".join(DATA_SETS), help=f"comma-separated of {DATA_SETS}"
    )
    parser.add_argument("--config", type=Path, help="station config whose [training] to use")
    parser.add_argument("--out", type=Path, default=Path("bench-quality"), help="output folder")
    parser.add_argument(
        "--boards", type=int, default=DEFAULT_BOARDS, help="synthetic station boards"
    )
    parser.add_argument("--connectors", help="station connectors only, e.g. J1,J4 (default: all)")
    parser.add_argument("--runs", type=int, default=50, help="onnxruntime timings per model")


def parse_data_sets(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DATA_SETS]
    if unknown or not names:
        raise ConfigError(f"--data-sets: unknown {unknown or 'none'}; allowed: {DATA_SETS}")
    return list(dict.fromkeys(names))


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        base = load_config(args.config).training
        methods = parse_methods(args.methods or base.method)  # checked before any work
        data_sets = parse_data_sets(args.data_sets)
        folders = {}
        if "cells" in data_sets:
            folders["cells"] = [build_cells(args.out / "data")]
        if "station" in data_sets:
            crops = build_station(args.out / "data", args.boards)
            folders["station"] = select_connectors(crops, args.connectors)
        rows = bench_quality(folders, args.out, base, methods, max(1, args.runs))
        print(write_quality(args.out, rows))
        # ms per crop is read beside the CPU that produced it (OUT/machine.json).
        machine = json.dumps(machine_facts())
        (args.out / "machine.json").write_text(machine + "\n", encoding="utf-8")
        print(f"machine: {machine}")
        return 1 if any(row.get("error") for row in rows) else 0

    return run_guarded("edge-inspect bench-quality", body)
