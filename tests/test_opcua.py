"""The OPC UA server over SignAndEncrypt with a user, against a real journal, with asyncua's
client: results, one ResultReadyEvent per board in journal order, the PLC handshake, Confirm;
and the refusals (wrong password, unknown client certificate, the None policy, bad arguments,
a client that subscribes and never reads)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from edge_agent.contracts.config import StationConfig
from edge_agent.contracts.verdict import ConnectorOutcome, build_verdict, new_result_id
from edge_agent.opcua.server import (
    RESULT_NS,
    VISION_NS,
    StationServer,
    application_uri,
    make_certificate,
)
from edge_agent.opcua.users import add_user
from edge_agent.ops.opcua_status import opcua_report
from edge_agent.store.journal import Journal
from trainer.harness.opcua_run import client_certificate

USER, PASSWORD = "plc", "s3cret-line7"
EVALS = ["OK", "NOK", "OK", "OK", "NOK"]
QUEUE = 10


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def record(journal: Journal, evaluation: str, n: int, camera: str = "cam1") -> dict:
    outcome = ConnectorOutcome.scored("J1", 2.0 if evaluation == "NOK" else 0.1, 1.0, {"v": "1"})
    verdict = build_verdict(
        result_id=new_result_id(), station="line7", camera=camera, part_id=f"P{n:03d}",
        source_uri=f"file:///b{n}.png", source_sha256=f"{n:064x}", captured_at=None,
        processing_ms={}, connectors=[outcome],
    )  # fmt: skip
    journal.record_inspection(verdict, [], "plant/verdict")
    return verdict


class Station:
    def __init__(self, root: Path, max_queue: int) -> None:
        self.root = root
        self.port = free_port()
        state = root / "state"
        state.mkdir(parents=True)
        self.journal = Journal(state / "journal.sqlite")
        self.journal.start_session()
        self.config = StationConfig.model_validate(
            {
                "paths": {"state": str(state), "models": str(root / "models")},
                "mqtt": {"host": "127.0.0.1", "port": free_port()},  # no broker listens
                "opcua": {
                    "enabled": True, "host": "127.0.0.1", "port": self.port,
                    "certificate": str(root / "pki/server-cert.der"),
                    "private_key": str(root / "pki/server-key.pem"),
                    "trusted_certs": str(root / "pki/trusted"),
                    "users_file": str(root / "pki/users"), "poll_interval_s": 0.05,
                    "max_queue": max_queue, "last_results": 10,
                },
            }
        )  # fmt: skip
        self.url = f"opc.tcp://127.0.0.1:{self.port}/edge-inspect"

    def journal_labels(self, result_id: str) -> list[tuple[str, str, str]]:
        journal = Journal(self.journal.path)
        try:
            record = journal.inspection(result_id) or {}
        finally:
            journal.close()
        return [(c["connector"], c["label"], c["by"]) for c in record.get("confirmations", [])]

    def client(self, cert: tuple[Path, Path, str], password: str = PASSWORD, **kw) -> Client:
        client = Client(self.url, timeout=5)
        client.application_uri = cert[2]
        client.set_user(USER)
        client.set_password(password)
        return client

    async def secure(self, client: Client, cert: tuple[Path, Path, str]) -> None:
        await client.set_security(
            SecurityPolicyBasic256Sha256, str(cert[0]), str(cert[1]),
            server_certificate=str(self.config.opcua.certificate),
            mode=ua.MessageSecurityMode.SignAndEncrypt,
        )  # fmt: skip


@contextlib.asynccontextmanager
async def running(tmp_path: Path, max_queue: int = 1000) -> AsyncIterator[tuple]:
    """A journal, the server serving it, and a trusted client certificate with a user."""
    station = Station(tmp_path, max_queue)
    await make_certificate(station.config)
    add_user(station.config.opcua.users_file, USER, PASSWORD)
    cert = await client_certificate(tmp_path, "plc")
    shutil.copy(cert[0], station.config.opcua.trusted_certs / cert[0].name)
    record(station.journal, "OK", 0)  # journaled before the server started: no event
    server = StationServer(station.config)
    await server.start()
    stop = asyncio.Event()
    task = asyncio.create_task(server.serve(stop))
    try:
        yield station, cert, server
    finally:
        stop.set()
        await task
        station.journal.close()


class Events:
    def __init__(self) -> None:
        self.got: list = []

    def event_notification(self, event) -> None:
        self.got.append(event)


async def wait_for(check, timeout: float = 10) -> None:
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_results_events_handshake_confirm(tmp_path: Path) -> None:
    asyncio.run(results_events_handshake_confirm(tmp_path))


async def results_events_handshake_confirm(tmp_path: Path) -> None:
    async with running(tmp_path) as (station, cert, _):
        await _results_events_handshake_confirm(station, cert)


async def _results_events_handshake_confirm(station: Station, cert: tuple) -> None:
    client = station.client(cert)
    await station.secure(client, cert)
    async with client:
        ns = await client.get_namespace_index(RESULT_NS)
        vision_ns = await client.get_namespace_index(VISION_NS)
        own = await client.get_namespace_index(application_uri(station.config))
        vision = await client.nodes.objects.get_child([f"{vision_ns}:VisionSystem"])
        rm = await vision.get_child([f"{ns}:ResultManagement"])
        names = {(await c.read_browse_name()).Name for c in await rm.get_children()}
        assert {"Results", "LatestResultId", "GetResultById", "GetLatestResult"} <= names
        event_type = await client.nodes.root.get_child(
            ["0:Types", "0:EventTypes", "0:BaseEventType", f"{ns}:ResultReadyEventType"]
        )
        handler = Events()
        subscription = await client.create_subscription(20, handler)
        await subscription.subscribe_events(rm, event_type, queuesize=100)
        sent = [record(station.journal, e, n) for n, e in enumerate(EVALS * 3, start=1)]
        await wait_for(lambda: len(handler.got) >= len(sent))
        assert [e.ResultId for e in handler.got] == [v["result_id"] for v in sent]
        assert [e.Evaluation for e in handler.got] == [v["evaluation"] for v in sent]
        assert [e.Seq for e in handler.got] == list(range(2, len(sent) + 2))  # no gap
        assert json.loads(handler.got[-1].ResultContent)["part_id"] == sent[-1]["part_id"]
        # The same result as the spec's ResultDataType: in the event and as LatestResult.
        await client.load_data_type_definitions()
        spec = {"OK": ua.ResultEvaluationEnum.OK, "NOK": ua.ResultEvaluationEnum.NotOK}
        meta = handler.got[-1].Result.ResultMetaData
        assert (meta.ResultId, meta.PartId) == (sent[-1]["result_id"], sent[-1]["part_id"])
        assert [spec[v["evaluation"]] for v in sent] == [
            e.Result.ResultMetaData.ResultEvaluation for e in handler.got
        ]
        latest = await (await rm.get_child([f"{ns}:LatestResult"])).read_value()
        assert latest.ResultMetaData.ResultId == sent[-1]["result_id"]
        assert latest.ResultMetaData.ResultEvaluationDetails.Text == "NOK: J1 NOK"
        assert json.loads(latest.ResultContent[0].Value) == json.loads(
            handler.got[-1].ResultContent
        )
        # The PLC handshake: counter, last evaluation (enumeration), part and result id.
        camera = await vision.get_child([f"{own}:Handshake", f"{own}:cam1"])
        assert camera is not None
        counter = await (await camera.get_child([f"{own}:ResultCounter"])).read_value()
        assert counter == len(sent) + 1
        last = await (await camera.get_child([f"{own}:LastEvaluation"])).read_value()
        assert last == 2  # NOK
        part = await (await camera.get_child([f"{own}:PartId"])).read_value()
        assert part == sent[-1]["part_id"]
        # Methods: fetch one result; confirm it, the label is journaled.
        target = sent[1]
        content, error = await rm.call_method(f"{ns}:GetResultById", target["result_id"])
        assert error == 0 and json.loads(content)["evaluation"] == "NOK"
        labelled = await rm.call_method(
            f"{own}:Confirm", target["result_id"], "", "KO", "plc-line7"
        )
        assert labelled == "J1"
        confirmations = station.journal.inspection(target["result_id"])["confirmations"]
        assert [(c["connector"], c["label"], c["by"]) for c in confirmations] == [
            ("J1", "KO", "opcua:plc-line7")
        ]
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await rm.call_method(f"{own}:Confirm", target["result_id"], "", "MAYBE", "x")
        assert refused.value.code == ua.StatusCodes.BadInvalidArgument
        with pytest.raises(ua.UaError):
            await rm.call_method(f"{own}:Confirm", 42, "", "OK", "x")
        # Reload with the broker down: not sent, and the answer says why (no hang).
        sent, outcome = await vision.call_method(f"{own}:Reload")
        assert sent is False and "cannot reach the broker at 127.0.0.1:" in outcome
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await vision.call_method(f"{own}:Reload", "now")
        assert refused.value.code == ua.StatusCodes.BadTooManyArguments
        with pytest.raises(ua.UaStatusCodeError) as refused:
            await rm.call_method(f"{own}:Confirm", target["result_id"], "")
        assert refused.value.code == ua.StatusCodes.BadArgumentsMissing
    report = opcua_report(station.config.paths.state, True)
    assert report["state"] == "running" and report["heartbeat_age_s"] < 60


def test_refusals_and_a_client_that_never_reads(tmp_path: Path) -> None:
    asyncio.run(refusals_and_a_client_that_never_reads(tmp_path))


async def refusals_and_a_client_that_never_reads(tmp_path: Path) -> None:
    async with running(tmp_path, max_queue=QUEUE) as (station, cert, server):
        await _refusals(station, cert, tmp_path, server)


def queued(server: StationServer) -> list[int]:
    """The events each monitored item holds for its client now."""
    subscriptions = server.server.iserver.subscription_service.subscriptions.values()
    return [len(q) for s in subscriptions for q in s._triggered_events.values()]


async def _refusals(station: Station, cert: tuple, tmp_path: Path, server: StationServer) -> None:
    wrong = station.client(cert, password="not-it")
    await station.secure(wrong, cert)
    with pytest.raises(ua.UaError):
        await wrong.connect()
    stranger = await client_certificate(tmp_path, "stranger")
    unknown = station.client(stranger)
    await station.secure(unknown, stranger)
    with pytest.raises((ua.UaError, OSError, asyncio.TimeoutError)):
        await unknown.connect()
    plain = station.client(cert)  # the None policy is off
    with pytest.raises((ua.UaError, OSError, asyncio.TimeoutError)):
        await plain.connect()
    with contextlib.suppress(Exception):
        await plain.disconnect()
    # A client that subscribes and never publishes: its queue stays at max_queue, others go on.
    idle = station.client(cert)
    await station.secure(idle, cert)
    reader = station.client(cert)
    await station.secure(reader, cert)
    async with idle, reader:
        ns = await idle.get_namespace_index(RESULT_NS)
        vision_ns = await idle.get_namespace_index(VISION_NS)
        path = [f"{vision_ns}:VisionSystem", f"{ns}:ResultManagement"]
        rm = await idle.nodes.objects.get_child(path)
        event_type = await idle.nodes.root.get_child(
            ["0:Types", "0:EventTypes", "0:BaseEventType", f"{ns}:ResultReadyEventType"]
        )
        idle_sub = await idle.create_subscription(60_000, Events())  # publishes once a minute
        await idle_sub.subscribe_events(rm, event_type, queuesize=0)
        handler = Events()
        sub = await reader.create_subscription(20, handler)
        await sub.subscribe_events(rm, event_type)
        sent = []
        for n in range(3 * QUEUE):  # one at a time: the reader gets each before the next
            sent.append(record(station.journal, "OK", n))
            await wait_for(lambda: len(handler.got) >= len(sent))
        assert [e.ResultId for e in handler.got] == [v["result_id"] for v in sent]
        assert max(queued(server)) == QUEUE  # the idle client's queue: capped, oldest dropped
