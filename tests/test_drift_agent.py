"""The drift monitor in a real agent process with a real broker: boards darkened to 70 % after
the baseline raise the capture state in /readyz (still ready), the retained drift message and
/metrics; the state survives a SIGKILL; a tinted connector raises that connector alone, and
activating a new model version for it resets its state."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder, wait_until
from onnx_fixtures import install_template_model
from readiness_station import BOXES, PREFIX, write_station
from test_readiness_agent import metrics, readyz

from edge_agent.comms.drift_publisher import BATCH_WAIT_S
from trainer.harness.station_run import AgentProcess, VerdictListener, drop_board

pytestmark = pytest.mark.slow

BASELINE = 10


class Boards:
    """Distinct boards (fresh noise each: no repeat of a content) dropped into the station."""

    def __init__(self, station: Path, listener: VerdictListener) -> None:
        self.folder = station.parent
        self.reference = cv2.imread(str(self.folder / "reference.png")).astype(np.float32)
        self.listener = listener
        self.rng = np.random.default_rng(7)
        self.count = 0

    def drop(self, n: int, gain: float = 1.0, tint_j1: float = 0.0) -> None:
        before = len(self.listener.verdicts)
        for _ in range(n):
            image = self.reference * gain + self.rng.normal(0, 2, self.reference.shape)
            x, y, w, h = BOXES["J1"]
            image[y : y + h, x : x + w, 2] += tint_j1
            path = self.folder / f"board-{self.count}.png"
            cv2.imwrite(str(path), np.clip(image, 0, 255).astype(np.uint8))
            drop_board(path, self.folder / "drop" / "cam1")
            self.count += 1
        assert self.listener.wait_for(before + n, 60), "verdicts"


def drift(agent: AgentProcess) -> dict:
    answer = readyz(agent)
    assert answer is not None and answer[0] == 200, answer  # a drifting station still inspects
    return answer[1]["drift"]


def retained(
    broker: MosquittoBroker, subject: str, holds: Callable[[dict], bool] = lambda _: True
) -> dict:
    """The broker's retained drift message of `subject` (what a new subscriber gets first), once
    it `holds` (the outbox may still be sending the newest state)."""
    found: dict = {}

    def retained_now() -> bool:
        recorder = MqttRecorder(broker, f"{PREFIX}/drift/{subject}", persistent=False)
        try:
            wait_until(lambda: recorder.messages, 10, "the retained drift message")
            first = recorder.messages[0]
            payload = json.loads(first.payload)
            found.update(payload)
            return first.retain and holds(payload)
        finally:
            recorder.close()

    wait_until(retained_now, 30, f"a retained drift/{subject} message as expected")
    return found


def test_light_change_is_one_capture_alarm_that_survives_sigkill_and_a_new_model_resets(
    tmp_path: Path, broker: MosquittoBroker
) -> None:
    station = write_station(tmp_path / "site")
    with station.open("a", encoding="utf-8") as config:
        config.write(
            f"[drift]\nbaseline_boards = {BASELINE}\nclear_after_boards = 5\n"
            "warning_arl_boards = 1000\n"  # a baseline this short needs many boards to alarm
        )
    agent = AgentProcess(station, broker.port, tmp_path / "agent.log").start()
    agent.wait_ready(60)
    listener = VerdictListener(broker.port, PREFIX)
    boards = Boards(station, listener)
    try:
        boards.drop(BASELINE + 2)
        assert {s["state"] for s in drift(agent).values()} == {"ok"}
        boards.drop(4, gain=0.7)  # the light is read on every second photo: two readings
        # The verdict is published before the monitor has taken its board: wait for it.
        wait_until(lambda: drift(agent)["capture"]["state"] == "alarm", 10, "a capture alarm")
        capture = drift(agent)["capture"]
        assert "brightness 0.7" in capture["reason"] and "light changed" in capture["reason"]
        assert {drift(agent)[c]["state"] for c in BOXES} == {"ok"}  # not two connector drifts
        message = retained(broker, "capture", lambda m: m["state"] == capture["state"])
        assert message["schema"] == "inspect.drift/1" and message["state"] == capture["state"]
        gauge = re.search(r'edge_inspect_drift_state\{connector="capture"\} (\S+)', metrics(agent))
        assert gauge is not None and float(gauge.group(1)) >= 1

        agent.kill()  # SIGKILL: the state was written when it changed
        agent = AgentProcess(station, broker.port, tmp_path / "agent2.log").start()
        agent.wait_ready(60)
        kept = drift(agent)["capture"]
        assert {k: kept[k] for k in ("state", "reason", "since", "measure")} == {
            k: capture[k] for k in ("state", "reason", "since", "measure")
        }

        boards.drop(12)  # the light back: cleared after `clear_after_boards` quiet boards
        wait_until(lambda: drift(agent)["capture"]["state"] == "ok", 10, "capture cleared")
        for _ in range(20):
            boards.drop(1, tint_j1=60.0)
            time.sleep(BATCH_WAIT_S + 0.3)  # the monitor takes its queued boards once a second
            if drift(agent)["J1"]["state"] != "ok":
                break
        states = drift(agent)
        assert states["J1"]["state"] in ("warning", "alarm"), states
        assert states["J1"]["reason"].startswith("J1 ") and states["capture"]["state"] == "ok"

        reference = cv2.imread(str(station.parent / "reference.png"))
        x, y, w, h = BOXES["J1"]
        template = reference[y : y + h, x : x + w].astype(np.float32)
        install_template_model(station.parent / "models", "J1", "2026-01-02.1", template, 16, 1e4)
        wait_until(lambda: "2026-01-02.1" in drift(agent)["J1"]["reason"], 30, "J1 reset")
        assert drift(agent)["J1"]["state"] == "ok"
        retained(broker, "J1", lambda message: message["model_version"] == "2026-01-02.1")
    finally:
        listener.close()
        agent.stop()
