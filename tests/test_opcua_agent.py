"""The OPC UA server as its own process beside a real agent process: every board of a stream
arrives as a ResultReadyEvent, in order, with the evaluation MQTT published; Reload reaches the
agent; the agent's /readyz body and the console's health page show the server; killed, the
server's heartbeat goes stale, and a new server on the same journal goes on without a gap."""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import signal
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from console_station import ROOT, ConsoleProcess
from mqtt_broker import MosquittoBroker, MqttRecorder
from readiness_station import PREFIX, write_station
from test_opcua import PASSWORD, USER, Events, free_port, wait_for

from edge_agent.contracts.config import load_config
from edge_agent.opcua.server import HEARTBEAT_S, RESULT_NS, VISION_NS, application_uri
from edge_agent.ops.opcua_status import STALE_AFTER_S
from trainer.harness.opcua_run import ClientIdentity, OpcuaProcess, secure_client, secure_station
from trainer.harness.station_run import AgentProcess

pytestmark = pytest.mark.slow
BOARDS = 12


def boards(site: Path, out: Path, count: int, seed: int) -> list[Path]:
    """Copies of the reference photo with a little noise."""
    reference = cv2.imread(str(site / "reference.png"))
    rng = np.random.default_rng(seed)
    made = []
    for n in range(count):
        image = np.clip(reference + rng.normal(0, 2, reference.shape), 0, 255).astype(np.uint8)
        path = out / f"board{seed}-{n:02d}.png"
        cv2.imwrite(str(path), image)
        made.append(path)
    return made


def drop(paths: list[Path], folder: Path) -> None:
    for board in paths:
        shutil.copy(board, folder / f".{board.name}")
        (folder / f".{board.name}").rename(folder / board.name)


def test_every_board_as_an_event_reload_and_a_killed_server_going_on(
    tmp_path: Path, broker: MosquittoBroker, recorder
) -> None:
    config_path = write_station(tmp_path / "site")
    with config_path.open("a", encoding="utf-8") as file:
        file.write(
            f'[opcua]\nenabled = true\nhost = "127.0.0.1"\nport = {free_port()}\n'
            "poll_interval_s = 0.05\n"
        )
    verdicts = recorder(f"{PREFIX}/verdict")
    agent = AgentProcess(config_path, broker.port, tmp_path / "agent.log").start()
    try:
        agent.wait_ready()
        asyncio.run(stream(config_path, tmp_path, verdicts, agent))
    finally:
        agent.stop()


def readyz(agent: AgentProcess) -> dict:
    with urllib.request.urlopen(f"http://127.0.0.1:{agent.health_port}/readyz") as response:
        return json.loads(response.read())


async def until_opcua(agent: AgentProcess, states: set[str], timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while (body := await asyncio.to_thread(readyz, agent))["opcua"]["state"] not in states:
        assert time.monotonic() < deadline, body["opcua"]
        await asyncio.sleep(0.5)
    return body


async def stream(
    config_path: Path, tmp_path: Path, verdicts: MqttRecorder, agent: AgentProcess
) -> None:
    identity = await secure_station(config_path, tmp_path / "client", USER, PASSWORD, "plc")
    env = {**agent.env, "PYTHONPATH": str(ROOT)}
    first = OpcuaProcess(config_path, env, tmp_path / "opcua-1.log").start()
    second = OpcuaProcess(config_path, env, tmp_path / "opcua-2.log")
    console = None
    folder = agent.config.inputs.drop_folders["cam1"]
    try:
        async with Station(first, identity) as station:
            handler = await station.subscribe()
            drop(boards(config_path.parent, tmp_path, BOARDS, seed=1), folder)
            await wait_for(lambda: len(handler.got) >= BOARDS, timeout=120)
            published = [json.loads(m.payload) for m in verdicts.messages]
            published.sort(key=lambda v: (v["session"], v["seq"]))
            assert len(published) == BOARDS
            assert [(e.ResultId, e.Evaluation) for e in handler.got] == [
                (v["result_id"], v["evaluation"]) for v in published
            ]
            state = await station.vision.get_child(
                [f"{station.vision_ns}:VisionStateMachine", f"{station.vision_ns}:CurrentState"]
            )
            assert await state.read_value() == "Operational"  # the agent is ready
            assert [e.Result.ResultMetaData.ResultId for e in handler.got] == [
                v["result_id"] for v in published
            ]
            seqs = [e.Seq for e in handler.got]
            assert seqs == list(range(seqs[0], seqs[0] + BOARDS))  # in order, no gap
            assert await station.counter() == BOARDS
            # Reload: the agent's own cmd/reload over MQTT, answered by the agent itself.
            sent, outcome = await station.vision.call_method(f"{station.own}:Reload")
            assert sent is True, outcome
            # (the agent re-reads config.toml on a reload: its layout is unchanged)
            assert json.loads(outcome) == {
                "command": "reload",
                "ok": True,
                "changes": [],
                "layout": {"ok": True, "changed": []},
            }
        body = await until_opcua(agent, {"running"}, timeout=10)
        assert body["ready"] is True

        # Killed: the heartbeat goes stale within its bound; the agent stays ready; the
        # console's health page says so.
        first.kill(signal.SIGKILL)
        console = ConsoleProcess(config_path, env, tmp_path / "console.log")
        body = await until_opcua(agent, {"stale", "down"}, STALE_AFTER_S + 2 * HEARTBEAT_S + 5)
        assert body["ready"] is True and "no heartbeat" in body["opcua"]["reason"]
        with urllib.request.urlopen(f"{console.url}/health", timeout=30) as response:
            page = response.read().decode()
        tile = re.search(r'id="opcua">(.*?)</div></div>', page)
        assert tile is not None and "OPC UA server" in tile.group(1)
        assert body["opcua"]["state"] in tile.group(1) and "no heartbeat" in tile.group(1)

        # Restarted (systemd's Restart=always) on the same journal: the counter goes on from
        # the journal's count and the next board's event follows without a gap.
        second.start()
        async with Station(second, identity) as station:
            assert await station.counter() == BOARDS
            handler = await station.subscribe()
            drop(boards(config_path.parent, tmp_path, 1, seed=2), folder)
            await wait_for(lambda: len(handler.got) >= 1, timeout=60)
            await wait_for(lambda: len(verdicts.messages) > BOARDS, timeout=10)
            assert [e.Seq for e in handler.got] == [seqs[-1] + 1]
            assert handler.got[0].ResultId == json.loads(verdicts.messages[-1].payload)["result_id"]
            await wait_for(lambda: station.last_counter == BOARDS + 1, timeout=5)
        await until_opcua(agent, {"running"}, timeout=10)
    finally:
        for process in (first, second):
            process.stop()
        if console is not None:
            console.stop()


class Station:
    """One client session on the server: the nodes the test reads, subscriptions on them."""

    def __init__(self, server: OpcuaProcess, identity: ClientIdentity) -> None:
        self.server, self.identity = server, identity
        self.last_counter: int | None = None

    async def __aenter__(self) -> Station:
        self.client = await secure_client(self.server.url, self.server.server_cert, self.identity)
        await self.client.connect()
        await self.client.load_data_type_definitions()  # the spec's result structures
        ns = await self.client.get_namespace_index(RESULT_NS)
        self.vision_ns = await self.client.get_namespace_index(VISION_NS)
        self.own = await self.client.get_namespace_index(
            application_uri(load_config(self.server.config_path))
        )
        self.vision = await self.client.nodes.objects.get_child([f"{self.vision_ns}:VisionSystem"])
        self.rm = await self.vision.get_child([f"{ns}:ResultManagement"])
        self.event_type = await self.client.nodes.root.get_child(
            ["0:Types", "0:EventTypes", "0:BaseEventType", f"{ns}:ResultReadyEventType"]
        )
        self.counter_node = await self.vision.get_child(
            [f"{self.own}:Handshake", f"{self.own}:cam1", f"{self.own}:ResultCounter"]
        )
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.client.disconnect()

    async def counter(self) -> int:
        return await self.counter_node.read_value()

    async def subscribe(self) -> Events:
        """Events of ResultManagement, and the camera's counter as data changes."""
        handler = Events()
        handler.datachange_notification = self._counter_changed  # type: ignore[attr-defined]
        subscription = await self.client.create_subscription(20, handler)
        await subscription.subscribe_events(self.rm, self.event_type, queuesize=100)
        await subscription.subscribe_data_change(self.counter_node)
        return handler

    def _counter_changed(self, node: object, value: int, data: object) -> None:
        self.last_counter = value
