"""An input retried without progress: given up with an ERROR verdict, or, when even that fails,
named in readiness while the systemd watchdog is no longer pinged (so systemd restarts us).

The agent runs in this process on a real drop folder and a real journal; what refuses one input
is the journal itself (an SQLite trigger refusing that part's row), the systemd watchdog a real
notify socket.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from mqtt_broker import wait_until
from template_station import CAMERA, board_png, write_station
from test_sdnotify import received, systemd  # noqa: F401 - the notify socket fixture

from edge_agent.contracts.config import load_config
from edge_agent.daemon import Agent

REFUSE = (
    "CREATE TRIGGER refuse_{part} BEFORE INSERT ON inspections WHEN NEW.part_id = '{part}' {more}"
    " BEGIN SELECT RAISE(ABORT, 'the journal refuses {part}'); END"
)


@pytest.fixture
def agent(tmp_path: Path, monkeypatch, systemd) -> Iterator[Agent]:  # noqa: F811
    monkeypatch.setenv("WATCHDOG_USEC", "400000")  # pets due every 0.1 s
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    storage = ("retry_max_s = 0.2", "give_up_after_s = 1")
    running = Agent(load_config(write_station(tmp_path, mqtt=False, storage=storage)))
    running.start()
    stop = threading.Event()
    main_loop = threading.Thread(target=running.run_until, args=(stop,), daemon=True)
    main_loop.start()
    try:
        yield running
    finally:
        stop.set()
        main_loop.join()
        running.stop()


def _drop(agent: Agent, part: str, seed: int) -> None:
    folder = agent.config.inputs.drop_folders[CAMERA]
    upload = folder.parent / f"{part}.upload"
    upload.write_bytes(board_png(seed))
    os.rename(upload, folder / f"{part}.png")


def _rows(agent: Agent) -> list[tuple[str, str, str]]:
    with sqlite3.connect(agent.journal.path) as db:
        return db.execute(
            "SELECT part_id, evaluation, verdict_json FROM inspections ORDER BY seq"
        ).fetchall()


def _pets(sock) -> int:
    return sum(message == b"WATCHDOG=1" for message in received(sock))


@pytest.mark.slow
def test_an_input_the_journal_refuses_gets_an_error_verdict_and_the_next_boards_follow(
    agent: Agent,
) -> None:
    with sqlite3.connect(agent.journal.path) as db:
        db.execute(REFUSE.format(part="SN_BAD", more="AND NEW.evaluation != 'ERROR'"))
    _drop(agent, "SN_BAD", 1)
    parts = [f"SN{n}" for n in range(10)]
    for seed, part in enumerate(parts, 2):
        _drop(agent, part, seed)

    wait_until(lambda: len(_rows(agent)) == 11, 60, "eleven verdicts")
    rows = _rows(agent)
    assert [part for part, _, _ in rows] == ["SN_BAD", *parts]  # arrival order kept
    assert rows[0][1] == "ERROR" and "no progress for 1 s" in rows[0][2]
    assert "the journal refuses SN_BAD" in rows[0][2]
    assert all(evaluation == "OK" for _, evaluation, _ in rows[1:])
    ready, details = agent.readiness()
    assert ready and details["storage"]["stuck_input"] is None


@pytest.mark.slow
def test_when_even_giving_up_fails_readiness_names_the_input_and_the_pets_stop(
    agent: Agent,
    systemd,  # noqa: F811
) -> None:
    wait_until(lambda: _pets(systemd) > 0, 10, "pets while idle")
    with sqlite3.connect(agent.journal.path) as db:
        db.execute(REFUSE.format(part="SN_STUCK", more=""))
    _drop(agent, "SN_STUCK", 1)
    _drop(agent, "SN_NEXT", 2)

    wait_until(lambda: agent.retry.stuck is not None, 30, "the input named stuck")
    ready, details = agent.readiness()
    stuck = details["storage"]["stuck_input"]
    assert not ready and stuck["input"].endswith("/SN_STUCK.png")
    assert "giving it up failed" in stuck["reason"] and "refuses SN_STUCK" in stuck["reason"]
    waiting = details["storage"]["waiting_input"]
    assert waiting["input"] == stuck["input"] and "refuses SN_STUCK" in waiting["error"]
    status = agent._birth()  # the retained `status` message
    assert status["state"] == "degraded" and status["storage"]["stuck_input"] == stuck
    received(systemd)  # what was sent before the stuck input was named
    wait_until(lambda: agent.retry.stuck is not None and _pets(systemd) == 0, 5, "the pets stop")
    threading.Event().wait(1.5)  # three main-loop passes
    assert _pets(systemd) == 0 and not _rows(agent)

    with sqlite3.connect(agent.journal.path) as db:
        db.execute("DROP TRIGGER refuse_SN_STUCK")  # the input can be finished after all
    wait_until(lambda: len(_rows(agent)) == 2, 30, "both verdicts")
    assert [part for part, _, _ in _rows(agent)] == ["SN_STUCK", "SN_NEXT"]
    wait_until(lambda: _pets(systemd) > 0, 10, "pets again")
    assert agent.retry.stuck is None and agent.readiness()[0]
