"""`edge-inspect demo`: the whole loop on a generated station, with no setup beyond install.

Generates a station (or reuses it), trains every connector, starts a private mosquitto and the
agent as a real process on the station's drop folder, feeds the test boards, prints each
verdict as it arrives, and ends with a summary against the generator's labels.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from edge_agent.ops.logs import configure_logging
from trainer.commands.options import add_work_folder_arguments, run_guarded
from trainer.harness.local_broker import LocalBroker
from trainer.harness.station_run import (
    AgentProcess,
    Board,
    VerdictListener,
    drop_board,
    load_boards,
)
from trainer.harness.station_setup import ensure_models, ensure_station
from trainer.settings import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_work_folder_arguments(
        parser,
        "--out",
        "work folder: the station is OUT/station (generated and trained when missing), "
        "each run's log and journal OUT/runs/<time>",
    )
    parser.add_argument(
        "--boards", type=int, default=320, help="boards in a station generated here"
    )
    parser.add_argument("--feed", type=int, default=0, help="test boards to feed, 0 for all")
    parser.add_argument("--retrain", action="store_true", help="train even if models exist")


def feed_and_watch(station: Path, boards: list[Board], log_path: Path) -> dict:
    """Run broker + agent, feed boards one after another, print verdicts; return the results."""
    config = load_config(station / "config.toml")
    drop = next(iter(config.inputs.drop_folders.values()))
    # Each run journals into a state folder of its own: the same boards are new boards again.
    state = log_path.parent / "state"
    with LocalBroker() as broker:
        agent = AgentProcess(station / "config.toml", broker.port, log_path, state).start()
        listener = VerdictListener(broker.port, config.mqtt.prefix)
        try:
            agent.wait_ready()
            print(f"agent ready (broker 127.0.0.1:{broker.port}); feeding {len(boards)} boards")
            print(VERDICT_HEADER)
            fed = {}
            for index, board in enumerate(boards, 1):
                fed[board.part_id] = drop_board(board.image, drop)
                if not listener.wait_for(index, timeout=60):
                    raise RuntimeError(f"no verdict for {board.image.name} within 60 s")
                _, verdict = listener.verdicts[-1]
                _print_verdict(verdict, board)
            memory = agent.memory_mb()
        finally:
            listener.close()
            agent.stop()
    return {"fed": fed, "received": listener.by_part(), "heatmaps": listener.heatmaps,
            "memory": memory}  # fmt: skip


# Names the columns of the verdict lines: the board's verdict, the connectors the agent found
# NOK, those the generator made KO, whether the two agree, and the agent's processing time.
VERDICT_HEADER = (
    f"  {'part':>8} {'verdict':<14} {'agent found':<16} {'generator truth':<21} agree (agent time)"
)


def _print_verdict(verdict: dict, board: Board) -> None:
    nok = [c["id"] for c in verdict["connectors"] if c["evaluation"] == "NOK"]
    truth = [cid for cid, label in board.labels.items() if label == "KO"]
    mark = "ok " if sorted(nok) == sorted(truth) else "MISMATCH"
    print(
        f"  {verdict['part_id']:>8} {verdict['evaluation']:<14} NOK {','.join(nok) or '-':<12}"
        f" truth KO {','.join(truth) or '-':<12} {mark}"
        f" ({verdict['processing_ms'].get('total')} ms)"
    )


def summarise(boards: list[Board], results: dict) -> tuple[str, bool]:
    """The closing summary, and whether every verdict agreed with the labels."""
    received, fed = results["received"], results["fed"]
    ko_total = ko_caught = ok_total = false_rejects = missing_heatmaps = 0
    latencies = []
    for board in boards:
        arrived, verdict = received[board.part_id]
        latencies.append((arrived - fed[board.part_id]) * 1000)
        evaluations = {c["id"]: c["evaluation"] for c in verdict["connectors"]}
        for cid, label in board.labels.items():
            if label == "KO":
                ko_total += 1
                ko_caught += evaluations.get(cid) == "NOK"
            else:
                ok_total += 1
                false_rejects += evaluations.get(cid) != "OK"
            if evaluations.get(cid) == "NOK":
                missing_heatmaps += (verdict["result_id"], cid) not in results["heatmaps"]
    p50, p99 = np.percentile(latencies, [50, 99])
    text = (
        f"boards {len(boards)} | KO connectors caught {ko_caught}/{ko_total} | "
        f"false rejects {false_rejects}/{ok_total} OK connectors | "
        f"NOK without heatmap {missing_heatmaps} | latency file->verdict p50 {p50:.0f} ms, "
        f"p99 {p99:.0f} ms | agent RSS peak {results['memory'].get('VmHWM', 0):.0f} MB"
    )
    return text, ko_caught == ko_total and false_rejects == 0 and missing_heatmaps == 0


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        configure_logging("WARNING")
        station = args.out / "station"
        started = time.perf_counter()
        ensure_station(station, args.seed, args.boards)
        ensure_models(station, args.retrain)
        boards = load_boards(station)
        boards = boards[: args.feed] if args.feed else boards
        run_dir = args.out / "runs" / time.strftime("%Y%m%d-%H%M%S")
        results = feed_and_watch(station, boards, run_dir / "agent.log")
        text, agreed = summarise(boards, results)
        seconds = time.perf_counter() - started
        print(f"\n{text}\n(total {seconds:.0f} s; agent log and journal in {run_dir})")
        return 0 if agreed else 1

    return run_guarded("edge-inspect demo", body)
