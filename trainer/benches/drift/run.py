"""One scenario through a real agent: a private broker, a fresh state folder and drop folder,
boards dropped as a camera writes them (changed ones decoded, changed and JPEG-encoded again),
verdicts and `<prefix>/drift/#` messages collected, the journal's drift history read after.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import paho.mqtt.client as mqtt

from edge_agent.contracts.atomic import write_bytes_atomic
from edge_agent.store.crop_store import JOURNAL_FILE
from edge_agent.store.sqlite_files import connect
from trainer.benches.agent_counters import AgentCounters
from trainer.benches.drift.scenarios import CHANGES, Box, Frame, Scenario
from trainer.benches.drift.supply import SuppliedBoard
from trainer.harness.local_broker import LocalBroker
from trainer.harness.station_run import AgentProcess, VerdictListener, drop_board
from trainer.synth.station import JPEG_QUALITY

VERDICT_WAIT_S = 120.0  # no verdict for this long: the agent is stuck, the run ends
SETTLE_S = 2.0  # after the last verdict, for the last drift messages


@dataclass
class DriftListener:
    """Every `<prefix>/drift/<subject>` message, in arrival order (subscribed before the
    agent starts, so each is a live change and none a stale retained one)."""

    port: int
    prefix: str
    messages: list[dict] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self._client.on_connect = lambda client, *_: client.subscribe(f"{self.prefix}/drift/#", 1)
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", self.port)
        self._client.loop_start()

    def _on_message(self, client, userdata, message) -> None:
        if not message.payload:
            return
        with self._lock:
            self.messages.append(json.loads(message.payload))

    def snapshot(self) -> list[dict]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


@dataclass
class ScenarioRun:
    """What one scenario produced: result id -> board, verdict times, drift messages, history."""

    board_of_result: dict[str, int]
    verdict_times: list[tuple[str, int]]
    messages: list[dict]
    history: list[dict]
    evaluations: dict[str, int]
    seconds: float
    drift_cpu_ms: dict[str, float]  # the monitor's CPU time per board, by stage (agent counters)

    @property
    def boards_per_s(self) -> float:
        return round(len(self.verdict_times) / max(self.seconds, 1e-9), 2)


def write_changed(
    board: SuppliedBoard, scenario: Scenario, index: int, tinted: tuple[Box, int], target: Path
) -> None:
    """Board `index` of the scenario into the drop folder, changed by its strength there."""
    strength = scenario.strength(index)
    if strength == 0.0:
        drop_board(board.image, target.parent, target.name)
        return
    image = cv2.imread(str(board.image), cv2.IMREAD_COLOR)
    changed = CHANGES[scenario.change].apply(
        image, strength, Frame(tinted[0], board.truth, tinted[1])
    )
    ok, jpeg = cv2.imencode(".jpg", changed, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"{target.name}: JPEG encoding failed")
    write_bytes_atomic(target, jpeg.tobytes())


def read_history(journal: Path) -> list[dict]:
    """The journal's drift_history rows (none when the journal has no such table)."""
    if not journal.is_file():
        return []
    db = connect(journal, read_only=True)
    try:
        rows = db.execute(
            "SELECT at, subject, measure, statistic, state FROM drift_history ORDER BY id"
        ).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        db.close()
    names = ("at", "subject", "measure", "statistic", "state")
    return [dict(zip(names, row, strict=True)) for row in rows]


def run_scenario(
    config_path: Path,
    scenario: Scenario,
    boards: Sequence[SuppliedBoard],
    tinted: tuple[Box, int],
    run_dir: Path,
    window: int,
    every_s: float = 10.0,
    keep_state: bool = False,
) -> ScenarioRun:
    """Stream the scenario's boards through a fresh agent and collect what it published."""
    shutil.rmtree(run_dir, ignore_errors=True)
    drop, state = run_dir / "drop", run_dir / "state"
    drop.mkdir(parents=True)
    with LocalBroker(persistence=False) as broker:
        agent = AgentProcess(config_path, broker.port, run_dir / "agent.log", state)
        agent.env["EDGE_INSPECT_INPUTS__DROP_FOLDERS"] = json.dumps(
            {agent.config.station.camera: str(drop.resolve())}
        )
        prefix = agent.config.mqtt.prefix
        drift = DriftListener(broker.port, prefix)
        verdicts = VerdictListener(broker.port, prefix)
        agent.start()
        try:
            agent.wait_ready()
            started = last = time.monotonic()
            for index in range(scenario.boards):
                if not verdicts.wait_for(index - window, timeout=VERDICT_WAIT_S):
                    raise RuntimeError(f"{scenario.name}: no verdict for {VERDICT_WAIT_S:.0f} s")
                name = f"{scenario.name}-{index:05d}.jpg"
                write_changed(boards[index], scenario, index, tinted, drop / name)
                if time.monotonic() - last >= every_s:
                    last = time.monotonic()
                    print(_progress(scenario, index + 1, len(verdicts.verdicts), drift), flush=True)
            if not verdicts.wait_for(scenario.boards, timeout=VERDICT_WAIT_S):
                raise RuntimeError(f"{scenario.name}: not every board got a verdict")
            seconds = time.monotonic() - started
            time.sleep(SETTLE_S)
            drift_cpu = AgentCounters.read(agent.health_port).drift_cpu_ms()
        finally:
            agent.stop()
            verdicts.close()
            drift.close()
    history = read_history(state / JOURNAL_FILE)
    if not keep_state:
        shutil.rmtree(state, ignore_errors=True)
        shutil.rmtree(drop, ignore_errors=True)
    board_of_result, times, evaluations = {}, [], {}
    for _, verdict in verdicts.verdicts:
        index = int(str(verdict["part_id"]).rsplit("-", 1)[1])
        board_of_result[verdict["result_id"]] = index
        times.append((verdict["created_at"], index))
        evaluations[verdict["evaluation"]] = evaluations.get(verdict["evaluation"], 0) + 1
    return ScenarioRun(
        board_of_result, times, drift.snapshot(), history, evaluations, seconds, drift_cpu
    )


def _progress(scenario: Scenario, dropped: int, answered: int, drift: DriftListener) -> str:
    states: dict[str, str] = {}
    for message in drift.snapshot():
        states[message.get("subject", "?")] = message.get("state", "?")
    flagged = ", ".join(f"{s} {v}" for s, v in sorted(states.items()) if v != "ok") or "all ok"
    return (
        f"{scenario.name}: dropped {dropped}/{scenario.boards}, verdicts {answered}, "
        f"strength {scenario.strength(dropped - 1):.2f} | drift: {flagged}"
    )
