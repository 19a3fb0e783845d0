"""Fuzzed drop-folder file names: each ends in exactly one verdict or a logged refusal.

The agent runs in this process (MQTT off) on a real drop folder and a real journal, so every
generated name goes the agent's own way: the drop-folder watcher (inotify) -> `Agent` handling ->
journal -> filing. Names are any bytes the OS allows in one name: no `/`, no NUL, at most 255
bytes, not `.` or `..` (and not the agent's own `processed`/`failed` folders, which a camera
cannot write a file over). A name the watcher takes as a partial upload (a leading dot,
`*.tmp`, `*.part`) is logged once in plain words instead; the line keeps moving throughout.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mqtt_broker import wait_until
from template_station import CAMERA, board_png, write_station

from edge_agent.contracts.config import load_config
from edge_agent.daemon import Agent
from edge_agent.inputs.drop_folder import is_ignored
from edge_agent.inputs.names import name_text

WAIT_S = 30
# Any bytes but the two a name cannot hold; the agent's own subfolders cannot be written over.
NAMES = (
    st.binary(min_size=1, max_size=255)
    .map(lambda raw: raw.replace(b"/", b"").replace(b"\0", b""))
    .filter(lambda name: name not in (b"", b".", b"..", b"processed", b"failed"))
)


@pytest.fixture
def running_agent(tmp_path: Path) -> Iterator[Agent]:
    agent = Agent(load_config(write_station(tmp_path, mqtt=False)))
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


def _partial_upload_logged(logs: list[dict], text: str) -> bool:
    """Whether the watcher logged the name `text` as a partial upload."""
    return any("partial upload" in entry["event"] and entry.get("file") == text for entry in logs)


def _one_line_utf8(name: bytes) -> bool:
    """Valid UTF-8 without control characters: its own rendering."""
    text = name.decode("utf-8")
    return name_text(text) == text


def _filed(folder: bytes, result_id: str) -> list[bytes]:
    """Names filed below `folder`'s processed/ and failed/ under this result id."""
    found = []
    for outcome in (b"processed", b"failed"):
        for _, _, files in os.walk(os.path.join(folder, outcome)):
            found.extend(name for name in files if name.startswith(result_id.encode() + b"_"))
    return found


@pytest.mark.slow
def test_any_file_name_ends_in_one_verdict_or_a_logged_refusal(running_agent: Agent) -> None:
    folder = os.fsencode(running_agent.config.inputs.drop_folders[CAMERA])
    staging = os.path.join(os.path.dirname(folder), b"staging")
    os.makedirs(staging, exist_ok=True)
    journal = sqlite3.connect(running_agent.journal.path)
    seeds = itertools.count(1)

    def rows_of(sha: str) -> list[tuple[str, str]]:
        return journal.execute(
            "SELECT result_id, source_path FROM inspections WHERE source_sha256 = ?", (sha,)
        ).fetchall()

    @settings(max_examples=50, suppress_health_check=[HealthCheck.too_slow])
    @given(name=NAMES)
    def one_name(name: bytes) -> None:
        data = board_png(next(seeds))
        sha = hashlib.sha256(data).hexdigest()
        upload = os.path.join(staging, b"upload")
        with open(upload, "wb") as fh:
            fh.write(data)
        target = os.path.join(folder, name)
        text = name_text(os.fsdecode(name))
        with structlog.testing.capture_logs() as logs:
            os.rename(upload, target)
            if is_ignored(os.fsdecode(name)):
                wait_until(
                    lambda: _partial_upload_logged(logs, text),
                    WAIT_S,
                    f"a partial-upload line for {name!r}",
                )
                os.unlink(target)  # the next example may use the same name again
                return
            wait_until(lambda: rows_of(sha), WAIT_S, f"a verdict for {name!r}")
        wait_until(lambda: not os.path.lexists(target), WAIT_S, f"{name!r} filed")
        (result_id, source_path), *more = rows_of(sha)
        assert not more  # exactly one verdict
        assert source_path == name_text(os.fsdecode(target))
        filed = _filed(folder, result_id)
        assert filed and all(len(f) <= 255 and _one_line_utf8(f) for f in filed)
        assert len(running_agent.retry) == 0 and running_agent.retry.stuck is None

    try:
        one_name()
        ready, details = running_agent.readiness()
        assert ready and details["storage"]["journal_backlog"] == 0, details
    finally:
        journal.close()
