"""The OPC UA server beside a real agent process: every board of a stream arrives as a
ResultReadyEvent, in order, with the evaluation MQTT published; the agent's /readyz body shows
the server's heartbeat."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
import urllib.request
from pathlib import Path

import cv2
import numpy as np
import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder
from readiness_station import PREFIX, write_station
from test_opcua import PASSWORD, USER, Events, client_cert, free_port, wait_for

from edge_agent.contracts.config import load_config
from edge_agent.opcua.server import (
    RESULT_NS,
    VISION_NS,
    StationServer,
    application_uri,
    make_certificate,
)
from edge_agent.opcua.users import add_user
from trainer.harness.station_run import AgentProcess

pytestmark = pytest.mark.slow
BOARDS = 12


def boards(site: Path, out: Path) -> list[Path]:
    """Copies of the reference photo with a little noise."""
    reference = cv2.imread(str(site / "reference.png"))
    rng = np.random.default_rng(1)
    made = []
    for n in range(BOARDS):
        image = np.clip(reference + rng.normal(0, 2, reference.shape), 0, 255).astype(np.uint8)
        path = out / f"board{n:02d}.png"
        cv2.imwrite(str(path), image)
        made.append(path)
    return made


def test_every_board_of_an_agent_stream_as_an_event(
    tmp_path: Path, broker: MosquittoBroker, recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    config_path = write_station(tmp_path / "site")
    port = free_port()
    with config_path.open("a", encoding="utf-8") as file:
        file.write(
            f'[opcua]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\npoll_interval_s = 0.05\n'
        )
    verdicts = recorder(f"{PREFIX}/verdict")
    agent = AgentProcess(config_path, broker.port, tmp_path / "agent.log").start()
    try:
        agent.wait_ready()
        monkeypatch.setenv("EDGE_INSPECT_HEALTH__PORT", str(agent.health_port))  # the server's
        monkeypatch.setenv("EDGE_INSPECT_MQTT__PORT", str(broker.port))
        asyncio.run(stream(config_path, port, tmp_path, verdicts, agent))
    finally:
        agent.stop()


async def stream(
    config_path: Path, port: int, tmp_path: Path, verdicts: MqttRecorder, agent: AgentProcess
) -> None:
    config = load_config(config_path)
    await make_certificate(config)
    add_user(config.opcua.users_file, USER, PASSWORD)
    cert = await client_cert(tmp_path, "plc")
    shutil.copy(cert[0], config.opcua.trusted_certs / cert[0].name)
    server = StationServer(config)
    await server.start()
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    try:
        from asyncua import Client, ua
        from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

        client = Client(f"opc.tcp://127.0.0.1:{port}/edge-inspect", timeout=5)
        client.application_uri = cert[2]
        client.set_user(USER)
        client.set_password(PASSWORD)
        await client.set_security(
            SecurityPolicyBasic256Sha256, str(cert[0]), str(cert[1]),
            server_certificate=str(config.opcua.certificate),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )  # fmt: skip
        async with client:
            ns = await client.get_namespace_index(RESULT_NS)
            vision_ns = await client.get_namespace_index(VISION_NS)
            rm = await client.nodes.objects.get_child(
                [f"{vision_ns}:VisionSystem", f"{ns}:ResultManagement"]
            )
            event_type = await client.nodes.root.get_child(
                ["0:Types", "0:EventTypes", "0:BaseEventType", f"{ns}:ResultReadyEventType"]
            )
            handler = Events()
            subscription = await client.create_subscription(20, handler)
            await subscription.subscribe_events(rm, event_type, queuesize=100)
            drop = config.inputs.drop_folders["cam1"]
            for board in boards(config_path.parent, tmp_path):
                shutil.copy(board, drop / f".{board.name}")
                (drop / f".{board.name}").rename(drop / board.name)
            await wait_for(lambda: len(handler.got) >= BOARDS, timeout=120)
            published = [json.loads(m.payload) for m in verdicts.messages]
            published.sort(key=lambda v: (v["session"], v["seq"]))
            assert len(published) == BOARDS
            assert [(e.ResultId, e.Evaluation) for e in handler.got] == [
                (v["result_id"], v["evaluation"]) for v in published
            ]
            machine = [f"{vision_ns}:VisionSystem", f"{vision_ns}:VisionStateMachine"]
            state = await client.nodes.objects.get_child([*machine, f"{vision_ns}:CurrentState"])
            assert await state.read_value() == "Operational"  # the agent is ready
            seqs = [e.Seq for e in handler.got]
            assert seqs == list(range(seqs[0], seqs[0] + BOARDS))  # in order, no gap
            # Reload: the agent's own cmd/reload over MQTT, answered by the agent itself.
            own = await client.get_namespace_index(application_uri(config))
            vision = await client.nodes.objects.get_child([f"{vision_ns}:VisionSystem"])
            sent, outcome = await vision.call_method(f"{own}:Reload")
            assert sent is True, outcome
            assert json.loads(outcome) == {"command": "reload", "ok": True, "changes": []}
        url = f"http://127.0.0.1:{agent.health_port}/readyz"
        deadline = time.monotonic() + 10
        while True:
            with urllib.request.urlopen(url, timeout=2) as response:
                body = json.loads(response.read())
            if body["opcua"]["state"] == "running" or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
        assert body["ready"] is True and body["opcua"]["state"] == "running"
    finally:
        stop.set()
        await task
