"""A full state disk: not ready, degraded and counted; once space is back every stalled board
gets one journal row and one verdict, in arrival order, without a restart.

The agent runs in this process (no trained models: its verdicts are ERROR, which is enough to
count them) with its `state/` on a small real tmpfs, a real mosquitto, real drop folders and
real /readyz and /metrics over HTTP.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder, wait_until
from onnx_fixtures import install_template_model
from small_disk import fill, small_tmpfs

from edge_agent.contracts.config import load_config
from edge_agent.daemon import Agent
from trainer.harness.station_run import drop_board

PREFIX = "plant/line9/aoi1"
VERDICT_TOPIC = f"{PREFIX}/verdict"
STATUS_TOPIC = f"{PREFIX}/status"
STALLED = 6


def _board(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    image = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (5, 5), 0)
    cv2.imwrite(str(path), image)
    return path


def _write_config(root: Path, broker: MosquittoBroker) -> Path:
    reference = cv2.imread(str(_board(root / "reference.png", 0)))
    template = reference[10:50, 10:70].astype(np.float32)
    install_template_model(root / "models", "J1", "2026-01-01.1", template, 16, 1e4)
    lines = [
        "[station]",
        'reference_image = "reference.png"',
        "[inputs]",
        'drop_folders = { cam1 = "drop/cam1" }',
        "settle_s = 0.05",
        "[mqtt]",
        f'host = "{broker.host}"',
        f"port = {broker.port}",
        f'prefix = "{PREFIX}"',
        "stats_interval_s = 3600",
        "[scoring]",
        "workers = 1",  # one worker: the verdicts' order is the arrival order
        "[storage]",
        "min_free_mb = 0.5",
        "crops_min_free_mb = 1",
        "retry_max_s = 2",
        "[health]",
        "port = 0",
        "[connectors.J1]",
        "box = [10, 10, 60, 40]",
    ]
    (root / "edge.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "edge.toml"


@pytest.fixture
def agent_on_small_disk(tmp_path: Path, broker: MosquittoBroker) -> Iterator[Agent]:
    with small_tmpfs(tmp_path / "state", 3_000_000):
        agent = Agent(load_config(_write_config(tmp_path, broker)))
        agent.start()
        stop = threading.Event()
        main_loop = threading.Thread(target=agent.run_until, args=(stop,), daemon=True)
        main_loop.start()
        try:
            assert agent.link is not None
            wait_until(lambda: agent.link.connected, 30, "the agent's broker connection")
            yield agent
        finally:
            stop.set()
            main_loop.join()
            agent.stop()


def _get(agent: Agent, route: str) -> tuple[int, bytes]:
    assert agent.health is not None
    url = f"http://127.0.0.1:{agent.health.port}{route}"
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _storage(agent: Agent) -> tuple[int, dict]:
    code, body = _get(agent, "/readyz")
    return code, json.loads(body)["storage"]


def _metric(agent: Agent, name: str) -> float:
    return agent.telemetry.registry.get_sample_value(f"edge_inspect_{name}") or 0.0


def _parts(recorder: MqttRecorder) -> list[str]:
    return [m.json()["part_id"] for m in recorder.on_topic(VERDICT_TOPIC)]


def _last_status(recorder: MqttRecorder) -> dict:
    return recorder.on_topic(STATUS_TOPIC)[-1].json()


def test_a_full_state_disk_stalls_boards_until_space_returns_then_each_gets_one_verdict(
    tmp_path: Path, recorder, agent_on_small_disk: Agent
) -> None:
    agent = agent_on_small_disk
    verdicts, status = recorder(VERDICT_TOPIC), recorder(STATUS_TOPIC)
    drop, boards = tmp_path / "drop" / "cam1", tmp_path / "boards"
    boards.mkdir()
    state = agent.config.paths.state
    drop_board(_board(boards / "SN0.png", 100), drop)
    verdicts.wait_for(lambda ms: len(ms) == 1, timeout=60)
    assert _get(agent, "/readyz")[0] == 200

    fill(state / "filler")  # the state filesystem is full
    stalled = [f"SN{n}" for n in range(1, STALLED + 1)]
    for part in stalled:
        drop_board(_board(boards / f"{part}.png", int(part[2:])), drop)

    wait_until(
        lambda: _storage(agent)[1]["journal_backlog"] >= 1, 60, "a board stalled by the journal"
    )
    code, storage = _storage(agent)
    assert code == 503 and storage["ok"] is False
    assert storage["journal"] == "failing" and "full" in storage["journal_error"]
    assert storage["journal_backlog"] >= 1 and storage["free_bytes"] < storage["min_free_bytes"]
    metrics = _get(agent, "/metrics")[1].decode()
    assert "edge_inspect_journal_ok 0.0" in metrics
    assert _metric(agent, "journal_errors_total") >= 1
    assert _metric(agent, "journal_backlog") >= 1
    degraded = status.wait_for(lambda ms: ms and ms[-1].json()["state"] == "degraded", timeout=30)
    assert degraded[-1].json()["storage"]["journal"] == "failing"
    assert _parts(verdicts) == ["SN0"]
    assert all((drop / f"{part}.png").exists() for part in stalled)  # nothing moved or lost

    (state / "filler").unlink()  # space is back; the agent is not restarted

    verdicts.wait_for(lambda ms: len(ms) == 1 + STALLED, timeout=90)
    wait_until(lambda: _get(agent, "/readyz")[0] == 200, 30, "/readyz to turn 200 again")
    status.wait_for(lambda ms: ms[-1].json()["state"] == "online", timeout=30)
    assert _parts(verdicts) == ["SN0", *stalled]  # one verdict each, in arrival order
    with sqlite3.connect(agent.journal.path) as db:
        rows = db.execute("SELECT part_id, seq FROM inspections ORDER BY seq").fetchall()
    assert [part for part, _ in rows] == ["SN0", *stalled]
    assert [seq for _, seq in rows] == list(range(1, 2 + STALLED))  # no gap, no double
    assert not any((drop / f"{part}.png").exists() for part in stalled)  # all filed
    assert _metric(agent, "journal_ok") == 1 and _metric(agent, "journal_backlog") == 0
    assert _last_status(status)["storage"]["journal"] == "ok"
