"""`edge-inspect bench`: the numbers behind docs/BENCHMARKS.md, measured on this machine.

- model: per connector, bundle size and onnxruntime ms per crop (median, agent's thread count)
- training: one connector trained in a child process: wall seconds and peak RSS
- agent: a real agent process on the station's drop folder with a private broker:
  latency from a board file being complete to its verdict reaching an MQTT subscriber
  (paced, one board at a time), sustained boards/s (as fast as the agent takes them,
  9 connectors per board), the mean time of each stage the agent times (its
  `edge_inspect_stage_seconds`, the drift monitor's `capture` and `drift` included), the drift
  monitor's CPU time per board (`edge_inspect_drift_cpu_seconds`), the agent process's CPU time
  per board (all its threads, paced and burst boards) and its peak RSS.
- with `--opcua-clients N`: alternated pairs of agent runs, without and then with the OPC UA
  server and N subscribed clients (`trainer/benches/opcua_pairs.py`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from edge_agent.contracts.bundle import MODEL_FILE, active_dir, read_manifest
from edge_agent.ops.logs import configure_logging
from trainer.benches.agent_counters import AgentCounters
from trainer.benches.opcua_pairs import pairs_table, summarize_pairs
from trainer.commands.options import add_work_folder_arguments, run_guarded
from trainer.evaluation.footprint import bundle_mb, machine_facts, time_scoring
from trainer.harness.console_watch import ConsoleWatch
from trainer.harness.local_broker import LocalBroker, free_port
from trainer.harness.opcua_beside import OpcuaBeside
from trainer.harness.opcua_run import secure_station, write_opcua_config
from trainer.harness.station_run import (
    AgentProcess,
    VerdictListener,
    cpu_seconds,
    drop_board,
    load_boards,
)
from trainer.harness.station_setup import ensure_models, ensure_station
from trainer.settings import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_work_folder_arguments(
        parser,
        "--out",
        "work folder (as demo): the station is OUT/station, generated and trained when missing",
    )
    parser.add_argument("--paced", type=int, default=40, help="boards for the latency run")
    parser.add_argument("--burst", type=int, default=200, help="boards for the throughput run")
    parser.add_argument("--skip-training", action="store_true", help="no training benchmark")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--console",
        action="store_true",
        help="run the operator console beside the agent with its live feed polling",
    )
    parser.add_argument(
        "--opcua-clients",
        type=_positive,
        default=0,
        metavar="N",
        help="alternated pairs of agent runs: without, then with the OPC UA server and N "
        "subscribed clients (SignAndEncrypt, a password user; events and the handshake counter)",
    )
    parser.add_argument("--pairs", type=_positive, default=2, help="pairs for --opcua-clients")


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text}: must be 1 or more")
    return value


def bench_models(models: Path, connectors: list[str], threads: int, runs: int = 200) -> dict:
    """Bundle MB and median/p99 onnxruntime ms per crop for each connector's active model."""
    rows = {}
    for connector in connectors:
        bundle = active_dir(models, connector)
        spec = read_manifest(bundle).input
        crop = np.random.default_rng(0).integers(0, 255, (spec.height, spec.width, 3), np.uint8)
        times = time_scoring(bundle, crop, threads, runs)
        rows[connector] = {
            "bundle_mb": bundle_mb(bundle),
            "onnx_mb": round((bundle / MODEL_FILE).stat().st_size / 1e6, 2),
            "ms_median": round(float(np.median(times)), 2),
            "ms_p99": round(float(np.percentile(times, 99)), 2),
            "crop": f"{spec.width}x{spec.height}",
        }
    return rows


def bench_training(station: Path, connector: str) -> dict:
    """Train one connector in a child process; wall time and the child's peak RSS."""
    with tempfile.TemporaryDirectory() as models:
        started = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "edge_agent.cli", "train", "--config",
             str(station / "config.toml"), "--data", str(station / "crops" / connector),
             "--out", models],
            check=True, capture_output=True,
        )  # fmt: skip
        seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"connector": connector, "wall_s": round(seconds, 1), "peak_rss_mb": round(peak_mb)}


def bench_agent(
    station: Path,
    paced: int,
    burst: int,
    log_path: Path,
    console: bool = False,
    beside: Callable[[AgentProcess], AbstractContextManager[Any]] | None = None,
) -> dict:
    """Paced latency, then a burst for sustained throughput, on distinct boards; with
    `console`, an operator console polls its live feed all along; `beside(agent)` is a context
    entered once the agent is ready and left after the last verdict (the OPC UA server)."""
    config = load_config(station / "config.toml")
    drop = next(iter(config.inputs.drop_folders.values()))
    boards = load_boards(station, ("train", "val", "test"))
    if len(boards) < paced + burst:
        raise ValueError(f"station has {len(boards)} boards; bench needs {paced + burst}")
    window = 2 * config.scoring.workers + 2
    with LocalBroker() as broker, tempfile.TemporaryDirectory() as state:
        agent = AgentProcess(station / "config.toml", broker.port, log_path, Path(state)).start()
        listener = VerdictListener(broker.port, config.mqtt.prefix)
        try:
            agent.wait_ready()
            watching = (
                ConsoleWatch(station / "config.toml", agent.env, log_path)
                if console
                else nullcontext()
            )
            with beside(agent) if beside else nullcontext(), watching as watch:
                cpu_from = cpu_seconds(agent.process)
                fed: dict[str, float] = {}
                for index, board in enumerate(boards[:paced], 1):
                    fed[f"b{index}"] = drop_board(board.image, drop, f"lat{index:04d}.jpg")
                    listener.wait_for(index, timeout=60)
                latencies = [(t - fed[f"b{i}"]) * 1000 for i, (t, _) in
                             enumerate(listener.verdicts[:paced], 1)]  # fmt: skip
                started = time.perf_counter()
                halfway = AgentCounters()
                for index, board in enumerate(boards[paced : paced + burst], 1):
                    listener.wait_for(paced + index - window, timeout=60)
                    if index == burst // 2 + 1:
                        halfway = AgentCounters.read(agent.health_port)
                    drop_board(board.image, drop, f"thr{index:04d}.jpg")
                if not listener.wait_for(paced + burst, timeout=300):
                    raise RuntimeError("not every burst board got a verdict")
                elapsed = listener.verdicts[-1][0] - started
                memory = agent.memory_mb()
                cpu = cpu_seconds(agent.process) - cpu_from
                counters = AgentCounters.read(agent.health_port)
        finally:
            listener.close()
            agent.stop()
    return {
        "latency_ms_p50": round(float(np.percentile(latencies, 50)), 1),
        "latency_ms_p99": round(float(np.percentile(latencies, 99)), 1),
        "boards_per_s": round(burst / elapsed, 2),
        "stage_ms": counters.stage_means_ms(),
        "drift_cpu_ms": counters.drift_cpu_ms(),
        "drift_cpu_ms_second_half": counters.drift_cpu_ms(since=halfway),
        "agent_cpu_ms_per_board": round(1000 * cpu / (paced + burst), 2),
        "agent_rss_mb": round(memory.get("VmRSS", 0)),
        "agent_peak_rss_mb": round(memory.get("VmHWM", 0)),
        "connectors_per_board": len(config.connectors),
        "workers": config.scoring.workers,
        "threads_per_session": config.scoring.threads,
        **(
            {"console_feed_polls": watch.polls, "console_rows_seen": watch.rows_seen}
            if watch is not None
            else {}
        ),
    }


def bench_opcua(
    station: Path, paced: int, burst: int, clients: int, pairs: int, log_path: Path
) -> dict:
    """Alternated pairs: the agent bench without the OPC UA server, then with it and `clients`
    subscribed clients. The server's config is the station's with an `[opcua]` section, written
    beside it for the run (relative paths hold) and removed after; its keys in a temp folder."""
    config_path = station / f".bench-opcua-{os.getpid()}.toml"
    runs = []
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        write_opcua_config(station / "config.toml", config_path, work / "pki", free_port())
        try:
            password = secrets.token_hex(12)
            identity = asyncio.run(secure_station(config_path, work / "client", "bench", password))
            for pair in range(1, pairs + 1):
                without = bench_agent(station, paced, burst, log_path)
                beside = OpcuaBeside(
                    config_path, identity, clients, paced + burst, work / f"{pair}", log_path
                )
                with_ = bench_agent(station, paced, burst, log_path, beside=beside)
                runs.append({"without": without, "with": with_, "received": beside.received})
        finally:
            config_path.unlink(missing_ok=True)
    return summarize_pairs(runs, clients, paced + burst)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        configure_logging("WARNING")
        station = args.out / "station"
        ensure_station(station, args.seed, 320)
        ensure_models(station, retrain=False)
        config = load_config(station / "config.toml")
        results: dict = {"machine": machine_facts()}
        results["models"] = bench_models(
            config.paths.models, list(config.connectors), config.scoring.threads
        )
        if not args.skip_training:
            results["training"] = bench_training(station, next(iter(config.connectors)))
        log_path = args.out / "bench.log"
        if args.opcua_clients:
            results["opcua"] = bench_opcua(
                station, args.paced, args.burst, args.opcua_clients, args.pairs, log_path
            )
        else:
            results["agent"] = bench_agent(station, args.paced, args.burst, log_path, args.console)
        text = json.dumps(results, indent=2)
        print(text)
        if args.opcua_clients:
            print(pairs_table(results["opcua"]))
        if args.json:
            args.json.write_text(text + "\n", encoding="utf-8")
        return 0

    return run_guarded("edge-inspect bench", body)
