"""`edge-inspect bench-quality`: each method on real solar cells, the synthetic station and any
folder of a user's own crops."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from edge_agent.contracts.config import ConfigError
from trainer.commands.options import run_guarded
from trainer.evaluation.footprint import machine_facts
from trainer.settings import load_config
from trainer.studies.compare import parse_methods, select_connectors
from trainer.studies.line_days import write_line
from trainer.studies.quality import (
    CELL_TYPES,
    DATA_SETS,
    DEFAULT_DATA_SETS,
    bench_quality,
    build_cells,
    build_station,
    user_data_sets,
    write_quality,
)
from trainer.studies.quality_shifted import SHIFTED, SHIFTED_BOARDS, shifted_rows
from trainer.synth.plan import DEFAULT_BOARDS


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--methods", help="comma-separated (default: the configured training.method)"
    )
    parser.add_argument(
        "--data-sets",
        help=f"comma-separated of {', '.join(DATA_SETS)} "
        f"(default: {','.join(DEFAULT_DATA_SETS)}, or none when --data is given)",
    )
    parser.add_argument(
        "--data",
        type=Path,
        action="append",
        default=[],
        metavar="DIR",
        help="a folder of one connector's crops: DIR/train/ok, DIR/test/ok, DIR/test/ko "
        "(optional DIR/test/ko_masks with the KO's names, DIR/val/ok, DIR/val/ko); repeatable",
    )
    parser.add_argument("--config", type=Path, help="station config whose [training] to use")
    parser.add_argument("--out", type=Path, default=Path("bench-quality"), help="output folder")
    parser.add_argument(
        "--boards", type=int, default=DEFAULT_BOARDS, help="synthetic station boards"
    )
    parser.add_argument(
        "--shifted-boards",
        type=int,
        default=SHIFTED_BOARDS,
        help="boards of a shifted station (station-mild): its val and test are the test set",
    )
    parser.add_argument("--connectors", help="station connectors only, e.g. J1,J4 (default: all)")
    parser.add_argument("--runs", type=int, default=50, help="onnxruntime timings per model")
    parser.add_argument(
        "--line",
        action="store_true",
        help="also simulate two days at a line per row: day one at the bundle's threshold, "
        "operators confirming every NOK and borderline OK, recalibration, day two "
        "(OUT/line.md, .csv, .png)",
    )
    parser.add_argument(
        "--line-runs", type=int, default=20, help="random orders of the two-day simulation"
    )


def parse_data_sets(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in DATA_SETS]
    if unknown or not names:
        raise ConfigError(f"--data-sets: unknown {unknown or 'none'}; allowed: {DATA_SETS}")
    return list(dict.fromkeys(names))


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        config = load_config(args.config)
        base = config.training
        methods = parse_methods(args.methods or base.method)  # checked before any work
        chosen = args.data_sets or ("" if args.data else ",".join(DEFAULT_DATA_SETS))
        data_sets = parse_data_sets(chosen) if chosen else []
        # The user's folders are checked first: a wrong layout is said before any long work.
        users = user_data_sets(args.data, args.out / "data" / "user")
        folders = {
            name: [build_cells(args.out / "data", name=name)]
            for name in CELL_TYPES
            if name in data_sets
        }
        shifted = [name for name in data_sets if name in SHIFTED]
        if shifted or "station" in data_sets:  # a shifted station is judged by its clean models
            crops = build_station(args.out / "data", args.boards)
            folders["station"] = select_connectors(crops, args.connectors)
        folders |= {name: [folder] for name, folder in users.items()}
        rows = bench_quality(folders, args.out, base, methods, max(1, args.runs))
        for name in shifted:
            rows += shifted_rows(name, rows, args.out, base, args.shifted_boards)
        print(write_quality(args.out, rows))
        if args.line:
            print(write_line(args.out, rows, config.retrain, base, max(1, args.line_runs)))
        # ms per crop is read beside the CPU that produced it (OUT/machine.json).
        machine = json.dumps(machine_facts())
        (args.out / "machine.json").write_text(machine + "\n", encoding="utf-8")
        print(f"machine: {machine}")
        return 1 if any(row.get("error") for row in rows) else 0

    return run_guarded("edge-inspect bench-quality", body)
