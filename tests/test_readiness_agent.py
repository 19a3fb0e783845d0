"""Each not-ready reason seen from outside a real agent process: `/readyz` 503 with the reason,
`edge-inspect health` exit 1, the retained status and the metrics carry it, the remedy is
logged once; and the agent turns ready again once the cause is gone.

The station is small and real: a reference photo, two connectors, each with a real ONNX model
(a template graph run by onnxruntime), a real mosquitto (one as `deploy/mosquitto.conf` sets it
up: no anonymous access, a password file), `edge-inspect run` as a child process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder, wait_until
from readiness_station import PREFIX, write_station

from edge_agent.contracts.bundle import ACTIVE_LINK
from trainer.demo.station_run import AgentProcess

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
STATUS_TOPIC = f"{PREFIX}/status"


def readyz(agent: AgentProcess) -> tuple[int, dict] | None:
    """The agent's /readyz status and body, or None while nothing answers."""
    url = f"http://127.0.0.1:{agent.health_port}/readyz"
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    except OSError:
        return None


def metrics(agent: AgentProcess) -> str:
    url = f"http://127.0.0.1:{agent.health_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as response:
        return response.read().decode()


def wait_for_reason(agent: AgentProcess, code: str, timeout: float = 60) -> dict:
    """Wait until /readyz is 503 and names `code`; return that reason."""
    found: dict = {}

    def named() -> bool:
        assert agent.process is not None and agent.process.poll() is None, agent.log_path
        answer = readyz(agent)
        if answer is None or answer[0] != 503:
            return False
        found.update(next((r for r in answer[1]["reasons"] if r["code"] == code), {}))
        return bool(found)

    wait_until(named, timeout, f"/readyz 503 naming {code}")
    return found


def health_command(agent: AgentProcess) -> subprocess.CompletedProcess:
    """`edge-inspect health` for the agent's config, as an operator or a probe runs it."""
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", "health", "--config", str(agent.config_path)],
        env={**agent.env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def logged(agent: AgentProcess, event: str, code: str) -> list[dict]:
    """The agent's JSON log lines of `event` for reason `code`."""
    lines = []
    for line in agent.log_path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("event") == event and record.get("code") == code:
            lines.append(record)
    return lines


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[..., AgentProcess]]:
    """Start `edge-inspect run` on a station against a broker port (ready or not)."""
    started: list[AgentProcess] = []

    def start(config: Path, port: int, **env: str) -> AgentProcess:
        agent = AgentProcess(config, port, tmp_path / f"agent-{len(started)}.log")
        agent.env.update(env)
        started.append(agent.start())
        wait_until(lambda: readyz(agent) is not None, 60, "the agent's health endpoint")
        return agent

    yield start
    for agent in started:
        agent.stop()


def test_a_broker_refusing_anonymous_access_makes_the_agent_not_ready(
    tmp_path: Path, secured: MosquittoBroker, start_agent: Callable[..., AgentProcess]
) -> None:
    config = write_station(tmp_path / "site")
    agent = start_agent(config, secured.port)
    reason = wait_for_reason(agent, "mqtt_refused")
    assert "refuses anonymous access: Not authorized" in reason["reason"]
    assert "set mqtt.username and mqtt.password_file" in reason["remedy"]

    probe = health_command(agent)
    assert probe.returncode == 1, probe.stdout + probe.stderr
    assert "mqtt_refused" in probe.stdout and "mqtt.password_file" in probe.stdout
    assert "not ready: the MQTT broker at 127.0.0.1:" in probe.stderr
    assert "remedy: set mqtt.username and mqtt.password_file" in probe.stderr
    assert 'edge_inspect_not_ready_reason{code="mqtt_refused"} 1.0' in metrics(agent)
    assert "edge_inspect_ready 0.0" in metrics(agent)

    # The agent keeps trying (1 s, then backing off); the remedy is logged once, not per try.
    time.sleep(3)
    assert readyz(agent) is not None and readyz(agent)[0] == 503
    [line] = logged(agent, "not_ready", "mqtt_refused")
    assert "mqtt.password_file" in line["remedy"]
    agent.stop()

    (tmp_path / "password").write_text("s3cret\n")
    credentials = {
        "EDGE_INSPECT_MQTT__USERNAME": "agent",
        "EDGE_INSPECT_MQTT__PASSWORD_FILE": str(tmp_path / "password"),
    }
    agent = start_agent(config, secured.port, **credentials)
    wait_until(lambda: readyz(agent)[0] == 200, 30, "ready with the broker's account")
    assert health_command(agent).returncode == 0


def test_a_broker_out_of_reach_longer_than_the_setting_makes_the_agent_not_ready(
    tmp_path: Path, broker: MosquittoBroker, start_agent: Callable[..., AgentProcess]
) -> None:
    config = write_station(tmp_path / "site")
    agent = start_agent(config, broker.port, EDGE_INSPECT_HEALTH__MQTT_DOWN_MAX_S="2")
    wait_until(lambda: readyz(agent)[0] == 200, 30, "ready")
    status = MqttRecorder(broker, STATUS_TOPIC, persistent=False)
    try:
        broker.stop()
        reason = wait_for_reason(agent, "mqtt_unreachable")
        assert f"127.0.0.1:{broker.port} has not been reachable since" in reason["reason"]
        assert "start the broker" in reason["remedy"]
        assert health_command(agent).returncode == 1

        broker.start()
        wait_until(lambda: readyz(agent)[0] == 200, 60, "ready once the broker is back")
        assert health_command(agent).returncode == 0
        messages = status.wait_for(lambda ms: ms and ms[-1].json().get("ready") is True, 30)
        assert messages[-1].json()["reasons"] == []
    finally:
        status.close()
    [_] = logged(agent, "not_ready", "mqtt_unreachable")
    [_] = logged(agent, "not_ready_cleared", "mqtt_unreachable")


def test_no_enabled_connector_makes_the_agent_not_ready(
    tmp_path: Path, broker: MosquittoBroker, start_agent: Callable[..., AgentProcess]
) -> None:
    status = MqttRecorder(broker, STATUS_TOPIC, persistent=False)
    try:
        agent = start_agent(write_station(tmp_path / "site", enabled=False), broker.port)
        reason = wait_for_reason(agent, "no_connector")
        assert "no connector is enabled" in reason["reason"]
        assert "[connectors.<id>]" in reason["remedy"]
        probe = health_command(agent)
        assert probe.returncode == 1 and "no_connector" in probe.stdout
        retained = status.wait_for(lambda ms: ms and ms[-1].json().get("reasons"), 30)[-1].json()
        assert retained["state"] == "degraded" and retained["ready"] is False
        assert [r["code"] for r in retained["reasons"]] == ["no_connector"]
        assert 'edge_inspect_not_ready_reason{code="no_connector"} 1.0' in metrics(agent)
    finally:
        status.close()


def test_an_enabled_connector_without_a_loadable_model_makes_the_agent_not_ready(
    tmp_path: Path, broker: MosquittoBroker, start_agent: Callable[..., AgentProcess]
) -> None:
    config = write_station(tmp_path / "site")
    active = config.parent / "models" / "J2" / ACTIVE_LINK
    version = os.readlink(active)
    active.unlink()
    status = MqttRecorder(broker, STATUS_TOPIC, persistent=False)
    try:
        agent = start_agent(config, broker.port)
        reason = wait_for_reason(agent, "model_missing")
        assert "connector J2 has no loadable model" in reason["reason"]
        assert "no active model" in reason["reason"]
        assert "connectors.J2.enabled = false" in reason["remedy"]
        assert readyz(agent)[1]["models_missing"] == ["J2"]
        assert health_command(agent).returncode == 1
        retained = status.wait_for(lambda ms: ms and ms[-1].json().get("reasons"), 30)[-1].json()
        assert [r["code"] for r in retained["reasons"]] == ["model_missing"]

        active.symlink_to(version)  # the model installed: the agent loads it and is ready
        wait_until(lambda: readyz(agent)[0] == 200, 30, "ready once J2 has its model")
        status.wait_for(lambda ms: ms[-1].json().get("ready") is True, 30)
    finally:
        status.close()
