"""The agent's state on every console page: live, not ready and why, unreachable since when, drift.

`/api/agent-state` is checked against a real health server whose answers the test sets; in
Chromium (slow), a real agent process is killed, restarted and cut off from its broker beside a
real console, and every open page follows within 2 s, the health page without a reload.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from console_station import ConsoleProcess, HttpClient, env_without_auth
from mqtt_broker import MosquittoBroker, wait_until
from readiness_station import write_station

from edge_agent.console.agent_state import drift_entries
from edge_agent.contracts.config import HealthSettings
from edge_agent.ops.health import HealthServer
from edge_agent.ops.telemetry import Telemetry
from trainer.harness.station_run import AgentProcess

WITHIN_MS = 2000
SINCE = "2026-12-06T18:00:00.000Z"
DRIFT = {
    "capture": {
        "state": "alarm",
        "reason": "sharpness 41, reference 97, 60 boards",
        "since": SINCE,
        "measure": "sharpness",
        "statistic": 1.4,
    },
    "J1": {"state": "ok", "reason": "scores within the reference"},
}
REASON = {
    "code": "mqtt_refused",
    "reason": "the MQTT broker at 127.0.0.1:1883 refuses anonymous access: Not authorized",
    "remedy": "set mqtt.username and mqtt.password_file",
}


class Agent:
    """What a health server answers for the agent; the test changes it."""

    def __init__(self) -> None:
        self.ready = True
        self.details: dict[str, Any] = {"reasons": [], "drift": DRIFT}

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        return self.ready, self.details


@pytest.fixture
def answers() -> Agent:
    return Agent()


@pytest.fixture
def health_server(answers: Agent) -> Iterator[HealthServer]:
    server = HealthServer(
        HealthSettings(host="127.0.0.1", port=0),
        heartbeat=lambda: True,
        readiness=answers.readiness,
        telemetry=Telemetry(),
    )
    server.start()
    yield server
    server.stop()


@pytest.fixture
def console(tmp_path: Path, health_server: HealthServer) -> Iterator[HttpClient]:
    config = tmp_path / "config.toml"
    config.write_text(f'[station]\nname = "test/console"\n[health]\nport = {health_server.port}\n')
    process = ConsoleProcess(config, env_without_auth(), tmp_path / "console.log")
    yield HttpClient(process.url)
    process.stop()


def test_the_agent_state_says_live_not_ready_and_unreachable_since_when(
    console: HttpClient, answers: Agent, health_server: HealthServer
) -> None:
    live = console.get_json("/api/agent-state")
    assert live["state"] == "live" and live["reasons"] == []
    assert sorted(live["drift"], key=lambda d: d["name"]) == [
        {"name": "J1", "state": "ok", "reason": DRIFT["J1"]["reason"], "since": ""},
        {"name": "capture", "state": "alarm", "reason": DRIFT["capture"]["reason"], "since": SINCE},
    ]

    answers.ready, answers.details = False, {"reasons": [REASON]}
    wait_until(lambda: console.get_json("/api/agent-state")["state"] == "not_ready", 10)
    not_ready = console.get_json("/api/agent-state")
    assert not_ready["reasons"] == [REASON] and not_ready["drift"] == []

    health_server.stop()
    wait_until(lambda: console.get_json("/api/agent-state")["state"] == "unreachable", 10)
    first = console.get_json("/api/agent-state")
    assert "no agent answering at http://127.0.0.1:" in first["error"]
    time.sleep(0.5)  # a later look: the state is the same, and so is its "since"
    later = console.get_json("/api/agent-state")
    assert later["since"] == first["since"] and later["checked_at"] > first["checked_at"]


def test_drift_entries_are_read_whatever_their_shape() -> None:
    listed = {"drift": [{"connector": "J3", "state": "warning", "reason": "J3 scores up", "x": 1}]}
    assert drift_entries(listed) == [
        {"name": "J3", "state": "warning", "reason": "J3 scores up", "since": ""}
    ]
    assert drift_entries({"drift": {"capture": {"state": "ok"}}}) == [
        {"name": "capture", "state": "ok", "reason": "", "since": ""}
    ]
    assert drift_entries({}) == [] and drift_entries({"drift": "alarm"}) == []


# -- in Chromium, beside a real agent -----------------------------------------------------------


def banner_shows(page: Any, text: str, timeout_ms: float) -> None:
    """Wait until the page's agent banner is visible and holds `text`."""
    expect = pytest.importorskip("playwright.sync_api").expect
    banner = page.locator("#agent-banner")
    expect(banner).to_contain_text(text, timeout=max(timeout_ms, 1))
    expect(banner).to_be_visible(timeout=1)


def agent_state_is(page: Any, state: str) -> None:
    """Wait until the page's script has seen the agent in `state`."""
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator("body")).to_have_attribute("data-agent-state", state, timeout=10_000)


def pill_is(page: Any, text: str) -> None:
    """Wait until the health page's readiness pill says `text` (refreshed, not reloaded)."""
    expect = pytest.importorskip("playwright.sync_api").expect
    expect(page.locator("h1 .pill")).to_have_text(text, timeout=10_000)


@pytest.mark.slow
def test_every_page_shows_the_agent_going_down_and_coming_back(
    tmp_path: Path, broker: MosquittoBroker, browser: Any
) -> None:
    config = write_station(tmp_path / "site")
    agent = AgentProcess(config, broker.port, tmp_path / "agent.log")
    # The restarted agent listens where the console looks; the broker may be out of reach 1 s.
    env = {"EDGE_INSPECT_HEALTH__MQTT_DOWN_MAX_S": "1", **agent.env}
    agent.env.update(env)
    agent.start().wait_ready()
    console = ConsoleProcess(config, {**agent.env}, tmp_path / "console.log")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=console.url)
    errors: list[str] = []
    try:
        pages = {}
        for path in ("/", "/review", "/health"):
            pages[path] = context.new_page()
            pages[path].on("pageerror", lambda error: errors.append(str(error)))
            pages[path].goto(path)
        feed, health = pages["/"], pages["/health"]
        for page in pages.values():
            agent_state_is(page, "live")
            assert page.locator("#agent-banner").is_hidden()
            assert page.locator("#agent-badge").inner_text() == "● agent live"
            page.evaluate("window.loadedOnce = true")  # gone if the page reloads
        assert feed.locator("#live").inner_text() == "● live"
        assert health.locator("h1 .pill").inner_text() == "READY"

        agent.kill(signal.SIGKILL)
        killed = time.monotonic()
        for page in pages.values():
            left_ms = WITHIN_MS - (time.monotonic() - killed) * 1000
            banner_shows(page, "Agent unreachable since", left_ms)
        assert "live" not in feed.locator("#live").inner_text().replace("not live", "")
        assert feed.locator("#live").inner_text() == "○ not live: agent unreachable"
        assert "start the agent" in pages["/review"].locator("#agent-banner").inner_text()
        assert pages["/review"].locator("#agent-badge").inner_text() == "● agent unreachable"
        pill_is(health, "NO AGENT")
        feed.screenshot(path=str(tmp_path / "feed-agent-killed.png"))

        agent = AgentProcess(config, broker.port, tmp_path / "agent-again.log")
        agent.env, agent.health_port = env, int(env["EDGE_INSPECT_HEALTH__PORT"])
        agent.start().wait_ready()
        for page in pages.values():
            agent_state_is(page, "live")
            assert page.locator("#agent-banner").is_hidden()
        assert feed.locator("#live").inner_text() == "● live"
        pill_is(health, "READY")

        broker.stop()  # out of reach longer than health.mqtt_down_max_s: not ready, and why
        for page in pages.values():
            banner_shows(page, "has not been reachable since", 15_000)
        assert "Agent not ready since" in feed.locator("#agent-banner").inner_text()
        assert feed.locator("#live").inner_text() == "○ not live: agent not ready"
        pill_is(health, "NOT READY")
        assert "start the broker" in health.locator("#not-ready-reasons").inner_text()
        feed.screenshot(path=str(tmp_path / "feed-not-ready.png"))
        health.screenshot(path=str(tmp_path / "health-not-ready.png"))

        for page in pages.values():
            assert page.evaluate("window.loadedOnce") is True  # followed without a reload
    finally:
        context.close()
        console.stop()
        agent.stop()
    assert not errors, errors
