"""`edge-inspect bench-retrain`: a nightly retrain of every connector beside a working agent.

On a copy of the station (the default one generated and trained when missing; a named one
must exist with its models trained): a real agent and a private
broker; the test boards flow and the MES confirms every connector with the generator's truth,
so every connector has new data. Then paced boards (one at a time, a pause between) measure
the agent's latency, first idle, then while `edge-inspect retrain --now` runs at the config's
niceness. Reports the retrain's wall time and each outcome, and both latencies as medians,
p99 and their ratio, all taken in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt

from edge_agent.contracts.atomic import write_bytes_atomic
from edge_agent.ops.logs import configure_logging
from edge_agent.store.crop_store import JOURNAL_FILE
from trainer.commands.options import DefaultsShown, run_guarded
from trainer.evaluation.footprint import machine_facts
from trainer.harness.local_broker import LocalBroker
from trainer.harness.station_run import AgentProcess, Board, VerdictListener, load_boards
from trainer.harness.station_setup import ensure_models, ensure_station, trained_station
from trainer.retrain.runs import retrain_root
from trainer.settings import load_config

JPEG_QUALITY = 92
DEFAULT_STATION = Path("demo/station")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = DefaultsShown
    parser.add_argument(
        "--station",
        type=Path,
        help="a generated station folder with trained models (default: "
        f"{DEFAULT_STATION}, generated and trained when missing)",
    )
    parser.add_argument("--work", type=Path, help="work folder (default: a temporary one)")
    parser.add_argument("--idle", type=int, default=30, help="paced boards before the retrain")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between paced boards")
    parser.add_argument("--json", type=Path, help="also write the results here")


def prepare(station: Path, work: Path) -> Path:
    """A copy of the station's config, models and drop folder whose retrain seeds from its crops."""
    shutil.copytree(station / "models", work / "models", symlinks=True)
    text = (station / "config.toml").read_text(encoding="utf-8")
    text = text.replace('reference_image = "', f'reference_image = "{station.resolve()}/')
    extra = f'\n[retrain]\nseed_data = "{(station / "crops").resolve()}"\nrollout = "auto"\n'
    (work / "config.toml").write_text(text + extra, encoding="utf-8")
    (work / "drop" / "cam1").mkdir(parents=True)
    return work / "config.toml"


def boards_forever(boards: list[Board]) -> Iterator[bytes]:
    """Board images, then re-encoded variants (one pixel changed) so none is a duplicate."""
    for board in boards:
        yield board.image.read_bytes()
    for round_ in range(1, 1000):
        for board in boards:
            image = cv2.imread(str(board.image))
            image[0, 0] = (round_ * 7 % 256, round_ % 256, 0)
            yield cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])[1].tobytes()


class PacedLine:
    """Drops one board at a time and times file-complete to verdict-received."""

    def __init__(self, drop: Path, listener: VerdictListener) -> None:
        self.drop = drop
        self.listener = listener
        self.count = 0

    def board(self, data: bytes) -> tuple[float, dict]:
        self.count += 1
        write_bytes_atomic(self.drop / f"p{self.count:05d}.jpg", data)
        started = time.perf_counter()
        if not self.listener.wait_for(self.count, timeout=120):
            raise RuntimeError(f"no verdict for paced board {self.count}")
        arrived, verdict = self.listener.verdicts[self.count - 1]
        return (arrived - started) * 1000, verdict


def confirm_all(port: int, prefix: str, pairs: list[tuple[dict, Board]]) -> int:
    """The MES confirms every connector of each verdict with the generator's truth."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect("127.0.0.1", port)
    client.loop_start()
    sent = []
    for verdict, board in pairs:
        for connector, label in board.labels.items():
            payload = {
                "result_id": verdict["result_id"],
                "connector": connector,
                "label": label,
                "by": "bench-mes",
            }
            sent.append(client.publish(f"{prefix}/confirm", json.dumps(payload), qos=1))
    for info in sent:
        info.wait_for_publish(30)
    client.disconnect()
    client.loop_stop()
    return len(sent)


def _stats(values: list[float]) -> dict:
    return {
        "p50": round(float(np.percentile(values, 50)), 1),
        "p99": round(float(np.percentile(values, 99)), 1),
        "n": len(values),
    }


def bench(station: Path, work: Path, idle: int, pause: float) -> dict:
    config_path = prepare(station, work)
    config = load_config(config_path)
    test = load_boards(station, ("test",))
    others = boards_forever(load_boards(station, ("train", "val")))
    with LocalBroker() as broker:
        agent = AgentProcess(config_path, broker.port, work / "agent.log").start()
        listener = VerdictListener(broker.port, config.mqtt.prefix)
        line = PacedLine(work / "drop" / "cam1", listener)
        try:
            agent.wait_ready()
            pairs = [(line.board(board.image.read_bytes())[1], board) for board in test]
            confirmations = confirm_all(broker.port, config.mqtt.prefix, pairs)
            _wait_journaled(config.paths.state / JOURNAL_FILE, confirmations)
            idle_ms = []
            for _ in range(idle):
                idle_ms.append(line.board(next(others))[0])
                time.sleep(pause)
            env = {**os.environ, "EDGE_INSPECT_MQTT__PORT": str(broker.port)}
            started = time.perf_counter()
            with open(work / "retrain.log", "wb") as log:
                retrain = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "edge_agent.cli",
                        "retrain",
                        "--now",
                        "--config",
                        str(config_path),
                    ],
                    env=env,
                    stdout=log,
                    stderr=log,
                )
                busy_ms = []
                while retrain.poll() is None:
                    busy_ms.append(line.board(next(others))[0])
                    time.sleep(pause)
            wall_s = time.perf_counter() - started
        finally:
            listener.close()
            agent.stop()
    status = json.loads((retrain_root(config) / "status.json").read_text())
    return {
        "machine": machine_facts(),
        "retrain": {
            "exit_code": retrain.returncode,
            "wall_s": round(wall_s, 1),
            "connectors": {
                c: {k: r[k] for k in ("outcome", "version", "seconds")}
                for c, r in status["connectors"].items()
            },
            "nice": config.retrain.nice,
        },
        "confirmations": confirmations,
        "latency_ms_idle": _stats(idle_ms),
        "latency_ms_during_retrain": _stats(busy_ms),
        "latency_p50_ratio": round(float(np.median(busy_ms) / np.median(idle_ms)), 2),
    }


def _wait_journaled(journal: Path, expected: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(journal) as db:
            if db.execute("SELECT COUNT(*) FROM confirmations").fetchone()[0] >= expected:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{journal}: fewer than {expected} confirmations after {timeout:.0f} s")


def station_folder(station: Path | None) -> Path:
    """The named station (refused unless it exists, trained), or the default one, made."""
    if station is not None:
        return trained_station(station).parent
    ensure_station(DEFAULT_STATION, 0, 320)
    ensure_models(DEFAULT_STATION, retrain=False)
    return DEFAULT_STATION


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        configure_logging("WARNING")
        station = station_folder(args.station)
        with tempfile.TemporaryDirectory(prefix="bench-retrain-") as scratch:
            work = args.work or Path(scratch)
            work.mkdir(parents=True, exist_ok=True)
            results = bench(station, work, args.idle, args.pause)
        text = json.dumps(results, indent=2)
        print(text)
        if args.json:
            args.json.write_text(text + "\n", encoding="utf-8")
        return 0 if results["retrain"]["exit_code"] == 0 else 1

    return run_guarded("edge-inspect bench-retrain", body)
