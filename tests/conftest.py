"""Fixtures shared by the test suite: a real mosquitto per test, recorders, a running agent."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from mqtt_broker import MosquittoBroker, MqttRecorder
from retrain_station import copy_station

from edge_agent.store.journal import Journal
from trainer.demo.station_run import AgentProcess

# The property-based fuzz tests (tests/test_fuzz_*.py) keep no example database in the tree and
# have no deadline (a shared CI machine's timing is not a property of the code); each test sets
# its own max_examples, so the number of generated inputs per CI run is fixed.
settings.register_profile("edge-inspect", database=None, deadline=None, print_blob=True)
settings.load_profile("edge-inspect")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Debian's chromium driven by Playwright, one per test module; skipped where either is
    missing (`./run.sh setup` installs both)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (./run.sh setup installs it)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh mosquitto on a free loopback port, stopped after the test."""
    server = MosquittoBroker(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A mosquitto as `deploy/mosquitto.conf` sets it up: no anonymous access, a password file
    with the user `agent` (password `s3cret`)."""
    passwords = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "agent", "s3cret"],
        check=True,
        capture_output=True,
    )
    server = MosquittoBroker(tmp_path / "secured", password_file=passwords)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[Journal]:
    """A journal at `tmp_path/journal.sqlite` with a session started, closed after the test."""
    opened = Journal(tmp_path / "journal.sqlite")
    opened.start_session()
    yield opened
    opened.close()


@pytest.fixture
def recorder(broker: MosquittoBroker) -> Iterator[Callable[..., MqttRecorder]]:
    """Make recorders on `broker` (`recorder("plant/#")`); all are closed after the test."""
    made: list[MqttRecorder] = []

    def make(topic_filter: str, persistent: bool = True) -> MqttRecorder:
        made.append(MqttRecorder(broker, topic_filter, persistent=persistent))
        return made[-1]

    yield make
    for item in made:
        item.close()


@pytest.fixture
def site(station: Path, tmp_path: Path) -> Path:
    """This test's own copy of the module's trained `station` (the path of its config)."""
    return copy_station(station, tmp_path / "site")


@pytest.fixture
def agent(site: Path, broker: MosquittoBroker, tmp_path: Path) -> Iterator[AgentProcess]:
    """`edge-inspect run` on `site` against `broker`, ready; stopped after the test."""
    process = AgentProcess(site, broker.port, tmp_path / "agent.log").start()
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()
