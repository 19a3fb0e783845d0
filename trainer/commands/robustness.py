"""`edge-inspect robustness`: clean models on shifted photos, adapted models, one global model.

Writes OUT/robustness.md and .csv (one row per shift, model and connector, then the means over
connectors with KO) and, with --global-model, OUT/global.md and .csv.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from edge_agent.contracts.config import ConfigError
from trainer.commands.options import (
    add_training_arguments,
    run_guarded,
    training_settings,
)
from trainer.evaluation.tables import means_with_ko, write_tables
from trainer.studies.global_model import COLUMNS as GLOBAL_COLUMNS
from trainer.studies.global_model import POOLED, global_rows
from trainer.studies.robustness import COLUMNS, SHIFTS, study
from trainer.synth.plan import DEFAULT_BOARDS
from trainer.train_all import rois_for
from trainer.train_connector import REPORTED_METRICS

MEAN = {"connector": "mean (with KO)"}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("robustness"),
        help="output folder; its stations are generated in OUT/stations",
    )
    parser.add_argument(
        "--station-seed", type=int, default=0, help="synth seed of the stations (0)"
    )
    parser.add_argument("--boards", type=int, default=DEFAULT_BOARDS, help="boards per station")
    parser.add_argument("--shifts", default=",".join(SHIFTS), help="comma-separated shifts")
    parser.add_argument("--connectors", help="comma-separated subset, e.g. J1,J3 (default: all)")
    parser.add_argument(
        "--global-model", action="store_true", help="also train one model over all connectors"
    )
    add_training_arguments(parser, installs=False)  # its models are tested, so always active


def parse_shifts(text: str) -> list[str]:
    shifts = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in shifts if name not in SHIFTS]
    if unknown or not shifts:
        raise ConfigError(f"--shifts: unknown {unknown or 'none'}; allowed: {', '.join(SHIFTS)}")
    return list(dict.fromkeys(shifts))


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        shifts = parse_shifts(args.shifts)
        settings = training_settings(args)
        out: Path = args.out
        out.mkdir(parents=True, exist_ok=True)
        rows = study(
            out,
            args.station_seed,
            args.boards,
            shifts,
            settings,
            rois_for(settings),
            args.connectors,
        )
        means = means_with_ko(rows, ("shift", "model"), REPORTED_METRICS, MEAN)
        print(write_tables(out / "robustness.md", out / "robustness.csv", rows, COLUMNS, means))
        failed = any(row.get("error") for row in rows)
        if args.global_model:
            local = [
                {**row, "model": "per-connector"}
                for row in rows
                if row["shift"] == "none" and not row.get("error")
            ]
            clean = out / "stations" / "none" / "crops"
            folders = [clean / row["connector"] for row in local]
            both = local + global_rows(folders, out / "global", settings)
            per_connector = [row for row in both if row["connector"] != POOLED]
            means = means_with_ko(per_connector, ("model",), REPORTED_METRICS, MEAN)
            print(write_tables(out / "global.md", out / "global.csv", both, GLOBAL_COLUMNS, means))
        return 1 if failed else 0

    return run_guarded("edge-inspect robustness", body)
