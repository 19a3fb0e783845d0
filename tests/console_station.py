"""A running line for the console tests: a generated station with two trained connectors, a real
mosquitto, a real agent process fed real boards, and `edge-inspect console` as a real process."""

from __future__ import annotations

import http.cookiejar
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder
from retrain_station import PREFIX, build_station, clone_version, copy_station

from edge_agent.contracts.bundle import active_dir
from edge_agent.contracts.config import load_config
from trainer.harness.local_broker import free_port
from trainer.harness.station_run import AgentProcess, Board, drop_board, load_boards

ROOT = Path(__file__).resolve().parents[1]
CONNECTORS = ("J1", "J3")
BOARDS = 80
OLD_VERSION = "2000-01-01.1"
FED_BOARDS = 6


def built_station(factory: pytest.TempPathFactory) -> Path:
    """The station's `edge.toml`, generated and trained once per test session."""
    root = factory.getbasetemp() / "console-station"
    config = root / "station" / "edge.toml"
    if not config.is_file():
        config = build_station(root / "station", CONNECTORS, BOARDS)
        models = load_config(config).paths.models
        for connector in CONNECTORS:
            clone_version(models, connector, OLD_VERSION)
    return config


def boards_to_feed(config: Path) -> list[Board]:
    """The station's test boards, those with a KO connector first."""
    boards = load_boards(config.parent, ("test",))
    return sorted(boards, key=lambda b: "KO" not in [b.labels[c] for c in CONNECTORS])


class HttpClient:
    """A browser-like HTTP client: keeps the session cookie and sends the CSRF token."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )
        self.token: str | None = None

    def request(
        self, method: str, path: str, body: bytes | None = None, headers: dict | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(
            self.base + path, data=body, method=method, headers=headers or {}
        )
        try:
            with self.opener.open(request, timeout=30) as response:
                status, data, found = response.status, response.read(), dict(response.headers)
        except urllib.error.HTTPError as exc:
            status, data, found = exc.code, exc.read(), dict(exc.headers)
        match = re.search(rb'name="csrf-token" content="([^"]+)"', data)
        if match:
            self.token = match.group(1).decode()
        return status, data, found

    def get(self, path: str) -> tuple[int, bytes, dict[str, str]]:
        return self.request("GET", path)

    def get_json(self, path: str) -> Any:
        status, data, _ = self.get(path)
        assert status == 200, (path, status, data[:300])
        return json.loads(data)

    def post_json(self, path: str, payload: Any, token: str | None = None) -> tuple[int, Any]:
        if self.token is None:
            self.get("/")
        headers = {"Content-Type": "application/json", "X-CSRF-Token": token or self.token or ""}
        status, data, _ = self.request("POST", path, json.dumps(payload).encode(), headers)
        try:
            return status, json.loads(data)
        except ValueError:
            return status, data.decode("utf-8", "replace")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any) -> None:
        return None


class ConsoleProcess:
    """`edge-inspect console` as a child process beside `agent`, on a free port."""

    def __init__(self, config: Path, env: dict[str, str], log: Path, *extra: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "ab") as handle:
            self.process = subprocess.Popen(
                [
                    *(sys.executable, "-m", "edge_agent.cli", "console"),
                    *("--config", str(config), "--port", str(self.port), *extra),
                ],
                env={**env, "PYTHONPATH": str(ROOT)},
                stdout=handle,
                stderr=handle,
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"console exited: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url + "/static/console.css", timeout=1):
                    return
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"console not answering: {log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)


@dataclass
class Line:
    """Everything of one running station: config, broker, agent, console and a recorder."""

    config: Path
    broker: MosquittoBroker
    agent: AgentProcess
    console: ConsoleProcess
    recorder: MqttRecorder

    @property
    def drop(self) -> Path:
        return self.config.parent / "drop" / "cam1"

    @property
    def models(self) -> Path:
        return load_config(self.config).paths.models

    def active(self, connector: str) -> str:
        found = active_dir(self.models, connector)
        assert found is not None
        return found.name

    def feed(self, board: Board, name: str | None = None) -> dict:
        """Drop a board into the agent's folder and return its verdict from the broker."""
        part_id = Path(name).stem if name else board.part_id
        drop_board(board.image, self.drop, name)
        messages = self.recorder.wait_for(
            lambda ms: any(_verdict(m, part_id) for m in ms), timeout=60
        )
        return next(m.json() for m in messages if _verdict(m, part_id))

    def client(self) -> HttpClient:
        return HttpClient(self.console.url)


def _verdict(message: Any, part_id: str) -> bool:
    return message.topic == f"{PREFIX}/verdict" and message.json().get("part_id") == part_id


def start_line(config: Path, folder: Path, boards: list[Board]) -> Line:
    """Copy the station, start broker, agent and console, feed `boards`; stop with `stop_line`."""
    site = copy_station(config, folder / "site")
    broker = MosquittoBroker(folder / "broker")
    broker.start()
    agent = AgentProcess(site, broker.port, folder / "agent.log").start()
    agent.wait_ready()
    recorder = MqttRecorder(broker, f"{PREFIX}/#")
    console = ConsoleProcess(site, agent.env, folder / "console.log")
    line = Line(site, broker, agent, console, recorder)
    for board in boards:
        line.feed(board)
    return line


def stop_line(line: Line) -> None:
    line.console.stop()
    line.recorder.close()
    line.agent.stop()
    line.broker.stop()


def env_without_auth() -> dict[str, str]:
    """The environment without a systemd credentials folder (no users from there)."""
    return {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
