"""`edge-inspect bench-drift`: how soon the drift monitor names a change of the line, and how
often it cries wolf on a clean one.

The default synthetic station (generated and trained when missing) is streamed through a real
agent and a private broker, each scenario on a fresh agent state: a clean prefix of
`drift.baseline_boards` + 100 boards, then a sustained step or a slow ramp of one change (gain
x0.7 and x1.3, blur sigma 2 px, a 1.5 deg turn, a 12 px shift, one connector's strongest
colour channel x0.6); and a long clean stream. The boards are unique good boards generated
ahead (`DEMO/drift-boards`, reused). Writes results.csv, results.json, results.md and a
picture per scenario into `--out`, prints the table and exits 1 when a row misses its target.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2

from edge_agent.contracts.config import ConfigError
from edge_agent.ops.logs import configure_logging
from trainer.benches.drift.plots import history_by_board, plot
from trainer.benches.drift.report import judge, markdown, write_tables
from trainer.benches.drift.run import run_scenario
from trainer.benches.drift.scenarios import most_colourful, scenarios
from trainer.benches.drift.supply import supply_boards
from trainer.commands.options import add_work_folder_arguments, run_guarded
from trainer.evaluation.footprint import machine_facts
from trainer.harness.station_setup import ensure_models, ensure_station
from trainer.settings import load_config

PREFIX_AFTER_BASELINE = 100  # clean boards after the monitor's baseline, before a change
# option -> (full run, --quick, what it counts)
SIZES = {
    "clean_boards": (5000, 400, "boards of the clean stream"),
    "step_boards": (100, 60, "boards after a step"),
    "ramp_boards": (300, 100, "boards a ramp takes from none to full"),
    "hold_boards": (200, 100, "boards a ramp's full change is held"),
}
NAMES = [s.name for s in scenarios(1, 1, 1, 1, 1)]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_work_folder_arguments(
        parser,
        "--demo",
        "the demo's work folder: its station DEMO/station is generated and trained when missing",
    )
    parser.add_argument(
        "--out", type=Path, help="results folder (default: DEMO/drift-bench, beside the station)"
    )
    parser.add_argument(
        "--scenarios",
        nargs="+",
        choices=NAMES,
        metavar="NAME",
        help=f"run only these (default all: {' '.join(NAMES)})",
    )
    for name, (full, quick, what) in SIZES.items():
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            help=f"{what} (default {full}; {quick} with --quick)",
        )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="a small run: the steps and the clean stream (unless --scenarios), at the "
        "smaller sizes above",
    )
    parser.add_argument(
        "--tint-connector",
        help="the connector whose box is tinted, its strongest colour channel (default: the "
        "most colourful box)",
    )
    parser.add_argument("--workers", type=int, default=2, help="processes generating boards")
    parser.add_argument("--progress", type=float, default=10.0, help="seconds between log lines")
    parser.add_argument(
        "--keep-state", action="store_true", help="keep each run's agent state and drop folder"
    )


def sizes(args: argparse.Namespace) -> dict[str, int]:
    """Each size option as given, else its full or --quick default."""
    return {
        name: getattr(args, name) if getattr(args, name) is not None else pair[args.quick]
        for name, pair in SIZES.items()
    }


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        configure_logging("WARNING")
        station = args.demo / "station"
        out = args.out or args.demo / "drift-bench"
        ensure_station(station, args.seed, 320)
        ensure_models(station, retrain=False)
        config_path = station / "config.toml"
        config = load_config(config_path)
        size = sizes(args)
        prefix = config.drift.baseline_boards + PREFIX_AFTER_BASELINE
        every = scenarios(
            prefix, size["step_boards"], size["ramp_boards"], size["hold_boards"],
            size["clean_boards"],
        )  # fmt: skip
        default = [s.name for s in every if not (args.quick and s.kind == "ramp")]
        chosen = [s for s in every if s.name in (args.scenarios or default)]
        boxes = {cid: tuple(c.box) for cid, c in config.connectors.items() if c.enabled}
        reference = cv2.imread(str(config.station.reference_image), cv2.IMREAD_COLOR)
        tinted, channel = most_colourful(reference, boxes)
        if args.tint_connector is not None:
            if args.tint_connector not in boxes:
                raise ConfigError(f"--tint-connector {args.tint_connector}: not enabled")
            tinted = args.tint_connector
            channel = most_colourful(reference, {tinted: boxes[tinted]})[1]
        boards = supply_boards(
            args.demo / "drift-boards",
            args.seed,
            max(s.boards for s in chosen),
            args.workers,
            args.progress,
        )
        window = 2 * config.scoring.workers + 2
        settings = {
            "station": str(config_path),
            "baseline_boards": config.drift.baseline_boards,
            "prefix_boards": prefix,
            **size,
            "tinted_connector": tinted,
            "tinted_channel": "BGR"[channel],
            "scenarios": [s.name for s in chosen],
            "machine": machine_facts(),
            "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        print(
            f"bench-drift: {len(chosen)} scenarios, {sum(s.boards for s in chosen)} boards, "
            f"clean prefix {prefix}, tinted connector {tinted} ({'BGR'[channel]} channel); "
            f"results in {out}",
            flush=True,
        )
        rows = []
        for scenario in chosen:
            print(f"scenario {scenario.name}: {scenario.boards} boards", flush=True)
            result = run_scenario(
                config_path, scenario, boards, (boxes[tinted], channel),
                out / "runs" / scenario.name, window, args.progress, args.keep_state,
            )  # fmt: skip
            row = judge(scenario, result.messages, result.board_of_result, tinted)
            row.boards_per_s = result.boards_per_s
            row.drift_cpu_ms = result.drift_cpu_ms.get("total")
            rows.append(row)
            series = history_by_board(result.history, result.verdict_times)
            plot(scenario, row, series, out / "plots" / f"{scenario.name}.png")
            print(f"scenario {scenario.name}: {row.summary()}: {'PASS' if row.passed else 'FAIL'}")
        paths = write_tables(rows, settings, out)
        print(markdown(rows))
        print(f"results: {', '.join(str(p) for p in paths)}, pictures in {out / 'plots'}")
        return 0 if all(row.passed for row in rows) else 1

    return run_guarded("edge-inspect bench-drift", body)
