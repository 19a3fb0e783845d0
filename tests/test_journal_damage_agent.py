"""A real agent process (`edge-inspect run`) on a damaged journal and after a lost `-wal`, with
a real mosquitto: a one-line refusal at start, `journal recover`, the scheduled integrity check
making the agent not ready, inputs whose rows were lost inspected again with no `(session, seq)`
reused; after each, the next 10 boards get verdicts without a restart.

The station is small (one connector, a template-distance model, boards that are the reference
with one pixel changed), so the agent starts in seconds.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import cv2
import numpy as np
import pytest
from console_station import ConsoleProcess, env_without_auth
from journal_damage import damage_pages, root_page
from mqtt_broker import MosquittoBroker, MqttRecorder, wait_until
from onnx_fixtures import install_template_model

from edge_agent.store.journal import Journal
from trainer.harness.station_run import AgentProcess, drop_board

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
PREFIX = "plant/line3/aoi2"
NEXT_BOARDS = 10


@pytest.fixture
def station(tmp_path: Path) -> Path:
    """A one-connector station (config path); its journal checked every second."""
    rng = np.random.default_rng(3)
    reference = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (5, 5), 0)
    cv2.imwrite(str(tmp_path / "reference.png"), reference)
    template = reference[10:50, 10:70].astype(np.float32)
    install_template_model(tmp_path / "models", "J1", "2026-01-01.1", template, 16, 1e4)
    lines = [
        "[station]",
        'reference_image = "reference.png"',
        "[inputs]",
        'drop_folders = { cam1 = "drop/cam1" }',
        "settle_s = 0.05",
        "[mqtt]",
        'host = "127.0.0.1"',
        f'prefix = "{PREFIX}"',
        "stats_interval_s = 3600",
        "[paths]",
        'models = "models"',
        'state = "state"',
        "[scoring]",
        "workers = 1",
        "[storage]",
        "min_free_mb = 0",
        "crops_min_free_mb = 0",
        "integrity_check_interval_s = 1",
        "[connectors.J1]",
        "box = [10, 10, 60, 40]",
    ]
    (tmp_path / "edge.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (tmp_path / "boards").mkdir()
    return tmp_path / "edge.toml"


@pytest.fixture
def start_agent(station: Path, broker: MosquittoBroker, tmp_path: Path) -> Iterator[Callable]:
    """Start `edge-inspect run` on the station, ready; every one started is stopped at the end."""
    started: list[AgentProcess] = []

    def start() -> AgentProcess:
        agent = AgentProcess(station, broker.port, tmp_path / "agent.log")
        started.append(agent.start())
        agent.wait_ready(60)
        return agent

    yield start
    for agent in started:
        agent.stop()


def board(station: Path, n: int) -> Path:
    """Board `SN<n>`: the reference with one pixel changed (its own content, same alignment)."""
    image = cv2.imread(str(station.parent / "reference.png"))
    image[200 + n // 250, 300 - n % 250] = (n % 256, 255 - n % 256, 7)
    path = station.parent / "boards" / f"SN{n}.png"
    cv2.imwrite(str(path), image)
    return path


def drop(station: Path, numbers: range) -> list[str]:
    for n in numbers:
        drop_board(board(station, n), station.parent / "drop" / "cam1")
    return [f"SN{n}" for n in numbers]


def journal_path(station: Path) -> Path:
    return station.parent / "state" / "journal.sqlite"


def journal_rows(station: Path) -> list[tuple[int, int, str, str]]:
    """(session, seq, result_id, input name) of every inspection, read-only."""
    uri = f"file:{journal_path(station)}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as db:  # closed: no file kept open
        rows = db.execute(
            "SELECT session, seq, result_id, source_path FROM inspections ORDER BY session, seq"
        ).fetchall()
    return [(s, q, r, Path(p).name) for s, q, r, p in rows]


def verdict_parts(recorder: MqttRecorder) -> dict[str, list[dict]]:
    """Verdicts received, by part id (a QoS 1 redelivery of the same result id counted once)."""
    by_part: dict[str, dict[str, dict]] = {}
    for message in recorder.on_topic(f"{PREFIX}/verdict"):
        verdict = message.json()
        by_part.setdefault(verdict["part_id"], {})[verdict["result_id"]] = verdict
    return {part: list(found.values()) for part, found in by_part.items()}


def expect_verdicts(recorder: MqttRecorder, parts: list[str], timeout: float = 90) -> None:
    recorder.wait_for(lambda _: set(parts) <= set(verdict_parts(recorder)), timeout)


def readyz(agent: AgentProcess) -> tuple[int, dict]:
    url = f"http://127.0.0.1:{agent.health_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def metric(agent: AgentProcess, name: str) -> float:
    url = f"http://127.0.0.1:{agent.health_port}/metrics"
    with urllib.request.urlopen(url, timeout=5) as response:
        for line in response.read().decode().splitlines():
            if line.startswith(f"edge_inspect_{name} "):
                return float(line.split()[1])
    raise AssertionError(f"no metric edge_inspect_{name}")


def edge_inspect(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_damaged_first_pages_refuse_the_start_in_one_line_until_recover_then_boards_flow(
    station: Path, start_agent: Callable, recorder: Callable, broker: MosquittoBroker
) -> None:
    verdicts = recorder(f"{PREFIX}/verdict")
    agent = start_agent()
    first = drop(station, range(3))
    expect_verdicts(verdicts, first)
    agent.stop()
    damage_pages(journal_path(station), 2, 2)  # the sessions table and sqlite_sequence

    refused = edge_inspect(
        "run", "--config", str(station), env={**agent.env, "EDGE_INSPECT_HEALTH__PORT": "0"}
    )

    output = refused.stdout + refused.stderr
    assert refused.returncode == 1
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert "agent cannot start" in lines[0] and "journal damaged" in lines[0]
    assert "edge-inspect journal recover --config" in lines[0]

    recovered = edge_inspect("journal", "recover", "--config", str(station))
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert "inspections: 3 row(s) copied" in recovered.stdout
    start_agent()
    after = drop(station, range(3, 3 + NEXT_BOARDS))
    expect_verdicts(verdicts, after)
    assert len(journal_rows(station)) == 3 + NEXT_BOARDS


def test_damage_found_by_the_scheduled_check_makes_the_agent_not_ready_and_boards_still_flow(
    station: Path, start_agent: Callable, recorder: Callable, tmp_path: Path
) -> None:
    Journal(journal_path(station)).close()  # its tables in the main file, not only in the -wal
    verdicts, status = recorder(f"{PREFIX}/verdict"), recorder(f"{PREFIX}/status")
    agent = start_agent()
    first = drop(station, range(2))
    expect_verdicts(verdicts, first)
    assert readyz(agent)[0] == 200 and metric(agent, "journal_intact") == 1

    # Bit rot under the running agent, in a page it has no reason to write.
    damage_pages(journal_path(station), root_page(journal_path(station), "confirmations"))

    wait_until(lambda: readyz(agent)[0] == 503, 30, "the scheduled check finding the damage")
    storage = readyz(agent)[1]["storage"]
    assert storage["ok"] is False and storage["journal"] == "damaged"
    assert "journal damaged" in storage["journal_error"]
    assert "edge-inspect journal recover" in storage["journal_error"]
    assert metric(agent, "journal_intact") == 0
    status.wait_for(
        lambda ms: ms and ms[-1].json().get("storage", {}).get("journal") == "damaged", 30
    )
    assert status.messages[-1].json()["state"] == "degraded"
    console_env = {**env_without_auth(), "EDGE_INSPECT_HEALTH__PORT": str(agent.health_port)}
    console = ConsoleProcess(station, console_env, tmp_path / "console.log")
    try:
        with urllib.request.urlopen(f"{console.url}/health", timeout=30) as response:
            page = response.read().decode()
    finally:
        console.stop()
    assert "NOT READY" in page and "journal damaged" in page and "journal recover" in page
    assert "journal unreadable: database disk image is malformed" in page  # its own read too

    refused = edge_inspect("journal", "recover", "--config", str(station))
    assert refused.returncode == 1 and "in use by another process" in refused.stdout
    second = edge_inspect("run", "--config", str(station), env=agent.env)
    assert second.returncode == 1 and "Traceback" not in second.stdout + second.stderr
    assert "agent cannot start" in second.stdout + second.stderr
    assert not [p for p in journal_path(station).parent.iterdir() if ".damaged-" in p.name]

    after = drop(station, range(2, 2 + NEXT_BOARDS))
    expect_verdicts(verdicts, after)
    logged = (tmp_path / "agent.log").read_text().splitlines()
    events = [json.loads(line) for line in logged if line.startswith("{")]
    assert len([e for e in events if e["event"] == "journal_damaged"]) == 1  # logged once
    not_ready = [e for e in events if e["event"] == "not_ready" and e["code"] == "journal_damaged"]
    assert len(not_ready) == 1 and "journal recover" in not_ready[0]["remedy"]


def test_a_lost_wal_after_a_kill_with_the_broker_down_inspects_the_lost_inputs_again(
    station: Path, start_agent: Callable, recorder: Callable, broker: MosquittoBroker,
    tmp_path: Path,
) -> None:  # fmt: skip
    verdicts = recorder(f"{PREFIX}/verdict")
    agent = start_agent()
    published = drop(station, range(4))
    expect_verdicts(verdicts, published)
    agent.stop()  # a clean stop: these rows are in the main file

    broker.stop()
    agent = start_agent()
    filed_only = drop(station, range(4, 9))
    wait_until(lambda: len(journal_rows(station)) == 9, 60, "the boards journaled")
    folder = station.parent / "drop" / "cam1"
    wait_until(lambda: not any(p.is_file() for p in folder.iterdir()), 30, "the boards filed")
    agent.kill(signal.SIGKILL)
    Path(f"{journal_path(station)}-wal").unlink()  # removed by hand: its -shm stays behind
    with closing(sqlite3.connect(journal_path(station))) as db:  # read-write: no -wal to read
        kept = db.execute("SELECT COUNT(*) FROM inspections").fetchone()[0]
    assert kept < 9  # the kill took rows with the -wal (the precondition)

    agent = start_agent()  # the broker still down
    wait_until(
        lambda: {name for *_, name in journal_rows(station)} >= {f"{p}.png" for p in filed_only},
        60,
        "the lost inputs inspected again",
    )
    records = [json.loads(line) for line in (tmp_path / "agent.log").read_text().splitlines()
               if line.startswith("{")]  # fmt: skip
    lost = [r for r in records if r["event"].startswith("journal lost its newest writes")]
    assert len(lost) == 1 and lost[0]["level"] == "warning"
    assert lost[0]["inputs"] == len(filed_only) and lost[0]["sessions_lost"] == 1
    broker.start()
    expect_verdicts(verdicts, published + filed_only)
    after = drop(station, range(9, 9 + NEXT_BOARDS))
    expect_verdicts(verdicts, after)

    rows = journal_rows(station)
    names = [name for *_, name in rows]
    assert sorted(names) == sorted(f"SN{n}.png" for n in range(9 + NEXT_BOARDS))  # one row each
    pairs: dict[tuple[int, int], set[str]] = {}
    for parts in verdict_parts(verdicts).values():
        for verdict in parts:
            pairs.setdefault((verdict["session"], verdict["seq"]), set()).add(verdict["result_id"])
    for session, seq, result_id, _ in rows:
        pairs.setdefault((session, seq), set()).add(result_id)
    assert all(len(ids) == 1 for ids in pairs.values()), pairs  # no (session, seq) reused
    assert {session for session, *_ in rows} == {1, 3}  # session 2 was lost and not reused
    wait_until(lambda: not any(p.is_file() for p in folder.iterdir()), 30, "every input filed")
