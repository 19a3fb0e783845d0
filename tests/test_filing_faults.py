"""A board whose verdict is journaled but whose file cannot be filed: the line goes on; a
filing that failed half-way completes on the retry.

The agent runs in this process on a real drop folder and journal; what refuses the filing is the
file system itself (today's `processed/<day>` is a plain file, so no folder can be made there).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from mqtt_broker import wait_until
from template_station import CAMERA, board_png, write_station

from edge_agent.contracts.atomic import write_bytes_atomic
from edge_agent.contracts.config import load_config
from edge_agent.contracts.verdict import new_result_id
from edge_agent.daemon import Agent
from edge_agent.inputs.drop_folder import DropFile
from edge_agent.inputs.filing import REASON_SUFFIX, filed_path, finish


@pytest.fixture
def station(tmp_path: Path) -> Path:
    return write_station(tmp_path, mqtt=False)


@contextlib.contextmanager
def _running(station: Path) -> Iterator[Agent]:
    agent = Agent(load_config(station))
    agent.start()
    stop = threading.Event()
    main_loop = threading.Thread(target=agent.run_until, args=(stop,), daemon=True)
    main_loop.start()
    try:
        yield agent
    finally:
        stop.set()
        main_loop.join()
        agent.stop()


def _parts(agent: Agent) -> list[str]:
    with sqlite3.connect(agent.journal.path) as db:
        return [row[0] for row in db.execute("SELECT part_id FROM inspections ORDER BY rowid")]


@pytest.mark.slow
def test_an_input_that_cannot_be_filed_keeps_its_one_verdict_and_the_line_goes_on(
    station: Path,
) -> None:
    folder = station.parent / "drop" / CAMERA
    folder.mkdir(parents=True)
    days = {dt.datetime.now(dt.UTC) + dt.timedelta(hours=h) for h in (-1, 0, 1)}
    for day in {moment.strftime("%Y-%m-%d") for moment in days}:  # around midnight too
        (folder / "processed").mkdir(exist_ok=True)
        (folder / "processed" / day).write_text("not a folder")
    parts = [f"SN{n}" for n in range(10)]

    with _running(station) as agent, structlog.testing.capture_logs() as logs:
        for seed, part in enumerate(parts, 1):
            write_bytes_atomic(folder / f"{part}.png", board_png(seed))
        wait_until(lambda: len(_parts(agent)) == len(parts), 60, "ten verdicts")
        ready, details = agent.readiness()
        assert ready and details["storage"]["journal_backlog"] == 0, details
    not_filed = [e for e in logs if e["event"].startswith("input has its verdict but could not")]
    assert sorted(Path(e["file"]).name for e in not_filed) == sorted(f"{p}.png" for p in parts)
    assert all(e["log_level"] == "error" and "File exists" in e["error"] for e in not_filed)

    assert _parts(agent) == parts  # one verdict each, in arrival order
    assert sorted(os.listdir(folder)) == sorted([*(f"{p}.png" for p in parts), "processed"])

    with _running(station) as agent:  # a restart files nothing twice and waits on nothing
        write_bytes_atomic(folder / "SN_NEXT.png", board_png(99))
        wait_until(lambda: len(_parts(agent)) == len(parts) + 1, 60, "the next verdict")
        assert _parts(agent) == [*parts, "SN_NEXT"]
        assert agent.readiness()[0]


def test_filing_again_after_the_reason_file_failed_writes_it_and_keeps_the_filed_input(
    tmp_path: Path,
) -> None:
    source = tmp_path / "cam1" / ("U" * 216 + ".png")
    source.parent.mkdir()
    source.write_bytes(b"not an image")
    drop = DropFile("cam1", source, "0" * 64, source.read_bytes())
    result_id = new_result_id()
    target = filed_path(source.parent, "failed", result_id, source.name)
    reason = target.with_name(target.name + REASON_SUFFIX)
    reason.mkdir(parents=True)  # the reason file cannot be written: its name is a folder

    with pytest.raises(IsADirectoryError):
        finish(drop, "failed", result_id, "cannot decode")
    assert target.read_bytes() == b"not an image" and not source.exists()  # moved already

    reason.rmdir()
    assert finish(drop, "failed", result_id, "cannot decode") == target  # the retry
    note = reason.read_text(encoding="utf-8")
    assert note.startswith("cannot decode\n") and f"result_id: {result_id}" in note
    assert f"source: {source.as_uri()}" in note
