"""The MQTT link against a real mosquitto: durable, ordered delivery, status, inbound topics."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder, Received, wait_until
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.comms.mqtt_link import MessageProperties, MqttLink
from edge_agent.comms.mqtt_security import read_password
from edge_agent.comms.paho_internals import forget_unacknowledged
from edge_agent.contracts.config import ConfigError, MqttSettings, TlsSettings
from edge_agent.store.journal import Journal, OutboxMessage

PREFIX = "plant/line3/aoi2"
VERDICTS = f"{PREFIX}/verdict"
STATUS = f"{PREFIX}/status"
MODEL = f"{PREFIX}/model/J1"
ROOT = Path(__file__).resolve().parents[1]


def make_verdict(result_id: str) -> dict:
    return {
        "schema": "inspect.verdict/1",
        "result_id": result_id,
        "evaluation": "OK",
        "historical": False,
        "connectors": [{"id": "J1", "evaluation": "OK"}],
    }


def record(journal: Journal, link: MqttLink, result_id: str, heatmap: bool = False) -> None:
    extra = [OutboxMessage(f"{PREFIX}/heatmap/{result_id}/J1", b"png", qos=0)] if heatmap else []
    journal.record_inspection(make_verdict(result_id), extra, VERDICTS)
    link.wake()


def sent(messages: list[Received], topic: str) -> list[Received]:
    """Messages on `topic` as the link sent them, leaving out the broker's own re-deliveries."""
    return [m for m in messages if m.topic == topic and not m.dup]


def verdicts(messages: list[Received]) -> list[dict]:
    return [m.json() for m in sent(messages, VERDICTS)]


def states(messages: list[Received]) -> list[str]:
    return [m.json()["state"] for m in sent(messages, STATUS)]


def wait_online(rec: MqttRecorder, count: int = 1) -> None:
    """Wait for the link's `count`-th birth: it subscribed and computed its live point before."""
    rec.wait_for(lambda ms: states(ms).count("online") >= count)


def publish(broker: MosquittoBroker, topic: str, payload: bytes, **props: Any) -> None:
    """Publish one QoS 1 message from a separate client and wait for the broker's PUBACK."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    properties = Properties(PacketTypes.PUBLISH)
    for name, value in props.items():
        setattr(properties, name, value)
    client.publish(topic, payload, qos=1, properties=properties).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


@pytest.fixture
def make_link(broker: MosquittoBroker) -> Iterator[Callable[..., MqttLink]]:
    """Start links on `broker`; any still running at the end are stopped."""
    made: list[MqttLink] = []

    def make(
        journal: Journal,
        handlers: dict | None = None,
        max_payload_bytes: int = 100_000,
        refused: Callable[[str], None] = lambda reason: None,
        **settings: Any,
    ) -> MqttLink:
        link = MqttLink(
            MqttSettings(host=broker.host, port=broker.port, prefix=PREFIX, **settings),
            journal,
            node="aoi2",
            session=journal.session or 0,
            birth=lambda: {"software": "edge-inspect test"},
            handlers=handlers or {},
            max_payload_bytes=max_payload_bytes,
            refused=refused,
        )
        link.start()
        made.append(link)
        return link

    yield make
    for link in made:
        link.stop(clean=False)


def test_verdicts_go_out_live_in_order_and_leave_the_outbox(
    journal: Journal, make_link: Callable[..., MqttLink], recorder: Callable[..., MqttRecorder]
) -> None:
    rec = recorder(f"{PREFIX}/#")
    link = make_link(journal)
    wait_online(rec)

    for n in range(5):
        record(journal, link, f"r{n}", heatmap=True)
    messages = rec.wait_for(lambda ms: len(verdicts(ms)) == 5)
    wait_until(lambda: journal.outbox_depth() == 0, what="an empty outbox")

    assert [(v["result_id"], v["seq"]) for v in verdicts(messages)] == [
        (f"r{n}", n + 1) for n in range(5)
    ]
    assert all(v["historical"] is False for v in verdicts(messages))
    assert not any(m.retain for m in messages if m.topic == VERDICTS)
    heatmaps = rec.wait_for(lambda ms: sum("/heatmap/" in m.topic for m in ms) == 5)
    assert {m.qos for m in heatmaps if "/heatmap/" in m.topic} == {0}


def test_outbox_of_an_earlier_session_is_delivered_as_historical(
    tmp_path: Path, make_link: Callable[..., MqttLink], recorder: Callable[..., MqttRecorder]
) -> None:
    path = tmp_path / "restart.sqlite"
    crashed = Journal(path)
    crashed.start_session()
    for n in range(3):
        crashed.record_inspection(make_verdict(f"old{n}"), [], VERDICTS)
    crashed.close()

    journal = Journal(path)
    journal.start_session()
    rec = recorder(VERDICTS)
    link = make_link(journal)
    replayed = verdicts(rec.wait_for(lambda ms: len(ms) == 3))
    record(journal, link, "new")
    live = verdicts(rec.wait_for(lambda ms: len(ms) == 4))[-1]
    link.stop()
    journal.close()

    assert [(v["result_id"], v["session"], v["seq"]) for v in replayed] == [
        ("old0", 1, 1),
        ("old1", 1, 2),
        ("old2", 1, 3),
    ]
    assert all(v["historical"] is True for v in replayed)
    assert (live["result_id"], live["session"], live["seq"], live["historical"]) == (
        "new",
        2,
        1,
        False,
    )


def test_broker_outage_loses_no_message(
    broker: MosquittoBroker,
    journal: Journal,
    make_link: Callable[..., MqttLink],
    recorder: Callable[..., MqttRecorder],
) -> None:
    rec = recorder(f"{PREFIX}/#")
    link = make_link(journal)
    wait_online(rec)
    record(journal, link, "before")
    rec.wait_for(lambda ms: len(verdicts(ms)) == 1)

    broker.stop()
    wait_until(lambda: not link.connected, what="the link to notice the outage")
    outage = [f"during{n}" for n in range(20)]
    for result_id in outage:
        record(journal, link, result_id, heatmap=True)
    broker.start()

    messages = rec.wait_for(lambda ms: len(verdicts(ms)) == 21)
    wait_until(lambda: journal.outbox_depth() == 0, what="an empty outbox")
    got = verdicts(messages)
    assert [v["result_id"] for v in got] == ["before", *outage]
    assert [v["seq"] for v in got] == list(range(1, 22))
    assert [v["historical"] for v in got] == [False] + [True] * 20


def test_unacknowledged_messages_are_resent_once_as_historical(
    broker: MosquittoBroker,
    journal: Journal,
    make_link: Callable[..., MqttLink],
    recorder: Callable[..., MqttRecorder],
) -> None:
    rec = recorder(f"{PREFIX}/#")
    broker.restart()  # saves the recorder's session, so it outlives the crash below
    link = make_link(journal)
    wait_online(rec)

    broker.freeze()
    for n in range(3):
        record(journal, link, f"r{n}")
    wait_until(
        lambda: [row.attempts for row in journal.pending(10)] == [1, 1, 1],
        what="the link to hand all three verdicts to the frozen broker",
    )
    broker.restart(crash=True)

    rec.wait_for(lambda ms: len(verdicts(ms)) >= 3)
    wait_until(lambda: journal.outbox_depth() == 0, what="an empty outbox")
    wait_online(rec, count=2)
    got = verdicts(rec.messages)
    assert [(v["result_id"], v["historical"]) for v in got] == [
        ("r0", True),
        ("r1", True),
        ("r2", True),
    ]


def test_message_too_large_for_the_broker_does_not_block_the_outbox(
    tmp_path: Path, journal: Journal
) -> None:
    small = MosquittoBroker(tmp_path / "small", extra_config=["max_packet_size 4000"])
    small.start()
    rec = MqttRecorder(small, VERDICTS)
    link = MqttLink(
        MqttSettings(port=small.port, prefix=PREFIX), journal, "aoi2", 1, dict, {}, 1000
    )
    try:
        link.start()
        big = OutboxMessage(f"{PREFIX}/heatmap/r0/J1", b"x" * 5000, qos=1)
        journal.record_inspection(make_verdict("r0"), [big], VERDICTS)
        record(journal, link, "r1")
        got = verdicts(rec.wait_for(lambda ms: len(verdicts(ms)) == 2))
        wait_until(lambda: journal.outbox_depth() == 0, what="an empty outbox")
    finally:
        link.stop()
        rec.close()
        small.stop()
    assert [v["result_id"] for v in got] == ["r0", "r1"]


def test_status_is_retained_online_then_stopped(
    broker: MosquittoBroker, journal: Journal, make_link: Callable[..., MqttLink]
) -> None:
    link = make_link(journal)
    wait_until(lambda: link.connected, what="a connection")
    link.publish_state("model/J1", {"version": "2026-08-31.1"})

    online = MqttRecorder(broker, f"{PREFIX}/#", persistent=False)
    got = online.wait_for(lambda ms: {m.topic for m in ms} >= {STATUS, MODEL})
    online.close()
    status = next(m for m in got if m.topic == STATUS)
    assert status.retain
    assert status.json() == {
        "node": "aoi2",
        "session": 1,
        "software": "edge-inspect test",
        "state": "online",
    }

    link.stop(clean=True)
    stopped = MqttRecorder(broker, STATUS, persistent=False)
    [message] = stopped.wait_for(lambda ms: len(ms) == 1)
    stopped.close()
    assert message.retain
    assert message.json() == {"state": "stopped", "node": "aoi2", "session": 1}


def test_clean_stop_lets_the_outbox_drain_first(
    journal: Journal, make_link: Callable[..., MqttLink], recorder: Callable[..., MqttRecorder]
) -> None:
    rec = recorder(f"{PREFIX}/#")
    link = make_link(journal)
    wait_online(rec)
    for n in range(3):
        record(journal, link, f"r{n}")
    link.stop(clean=True)

    messages = rec.wait_for(lambda ms: states(ms)[-1:] == ["stopped"])
    assert journal.outbox_depth() == 0
    assert [(v["result_id"], v["historical"]) for v in verdicts(messages)] == [
        ("r0", False),
        ("r1", False),
        ("r2", False),
    ]


def test_unclean_stop_leaves_the_offline_will(
    journal: Journal, make_link: Callable[..., MqttLink], recorder: Callable[..., MqttRecorder]
) -> None:
    rec = recorder(STATUS, persistent=False)
    link = make_link(journal)
    wait_online(rec)
    link.stop(clean=False)
    rec.wait_for(lambda ms: states(ms)[-1:] == ["offline"])


def test_killed_agent_leaves_the_offline_will(
    broker: MosquittoBroker, tmp_path: Path, recorder: Callable[..., MqttRecorder]
) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from edge_agent.contracts.config import MqttSettings
        from edge_agent.store.journal import Journal
        from edge_agent.comms.mqtt_link import MqttLink
        journal = Journal(Path(sys.argv[2]))
        session = journal.start_session()
        settings = MqttSettings(port=int(sys.argv[1]), prefix="{PREFIX}")
        MqttLink(settings, journal, "aoi2", session, dict, {{}}, 1000).start()
        time.sleep(120)
        """
    )
    rec = recorder(STATUS, persistent=False)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    agent = subprocess.Popen(
        [sys.executable, "-c", script, str(broker.port), str(tmp_path / "agent.sqlite")], env=env
    )
    try:
        wait_online(rec)
    finally:
        agent.send_signal(signal.SIGKILL)
        agent.wait()
    messages = rec.wait_for(lambda ms: states(ms)[-1:] == ["offline"])
    assert messages[-1].json() == {"state": "offline", "node": "aoi2", "session": 1}
    late = MqttRecorder(broker, STATUS, persistent=False)
    [retained] = late.wait_for(lambda ms: len(ms) == 1)
    late.close()
    assert retained.retain and retained.json()["state"] == "offline"


def test_oversized_or_badly_named_inbound_messages_are_not_passed_on(
    broker: MosquittoBroker,
    journal: Journal,
    make_link: Callable[..., MqttLink],
    recorder: Callable[..., MqttRecorder],
) -> None:
    received: list[tuple[str, bytes, dict]] = []
    handlers = {
        "image/+": lambda suffix, payload, props: received.append((suffix, payload, dict(props))),
        "confirm": lambda suffix, payload, props: received.append((suffix, payload, dict(props))),
    }
    refused: list[str] = []
    rec = recorder(STATUS)
    make_link(journal, handlers=handlers, max_payload_bytes=1000, refused=refused.append)
    wait_online(rec)

    publish(broker, f"{PREFIX}/image/cam1", b"x" * 1001)
    publish(broker, f"{PREFIX}/image/cam.1", b"small")
    publish(broker, f"{PREFIX}/image/cam1", b"y" * 1000, UserProperty=[("part_id", "SN1")])
    publish(broker, f"{PREFIX}/confirm", b"{}")
    wait_until(lambda: len(received) >= 2, what="the two acceptable messages")

    assert received == [("image/cam1", b"y" * 1000, {"part_id": "SN1"}), ("confirm", b"{}", {})]
    assert refused == ["too_large", "bad_topic"]  # refused aloud: logged and counted


def test_a_message_left_unacknowledged_comes_again_as_a_resend_of_the_same_packet(
    broker: MosquittoBroker,
    journal: Journal,
    make_link: Callable[..., MqttLink],
    recorder: Callable[..., MqttRecorder],
) -> None:
    """What the image spool relies on to take a resend once: the broker's DUP flag and the
    same packet id on the message it delivers again."""
    deliveries: list[tuple[bytes, int, bool]] = []

    def on_image(suffix: str, payload: bytes, props: MessageProperties) -> bool:
        deliveries.append((payload, props.packet_id, props.redelivered))
        return len(deliveries) > 1  # the first delivery is not acknowledged

    rec = recorder(STATUS)
    make_link(journal, handlers={"image/+": on_image})
    wait_online(rec)
    publish(broker, f"{PREFIX}/image/cam1", b"img")
    wait_until(lambda: len(deliveries) >= 2, what="the resend", timeout=60)

    (first, first_id, first_dup), (again, again_id, again_dup) = deliveries[:2]
    assert (first, again) == (b"img", b"img")
    assert (first_dup, again_dup) == (False, True)
    assert first_id == again_id > 0


def test_resubscribes_and_republishes_state_after_broker_restart(
    broker: MosquittoBroker,
    journal: Journal,
    make_link: Callable[..., MqttLink],
    recorder: Callable[..., MqttRecorder],
) -> None:
    confirmations: list[bytes] = []
    rec = recorder(f"{PREFIX}/#")
    link = make_link(journal, handlers={"confirm": lambda s, p, props: confirmations.append(p)})
    wait_online(rec)
    link.publish_state("model/J1", {"version": "2026-08-31.1"})

    broker.restart()
    wait_online(rec, count=2)
    publish(broker, f"{PREFIX}/confirm", b'{"result_id": "r1"}')
    wait_until(lambda: confirmations == [b'{"result_id": "r1"}'], what="the confirmation")
    models = sent(rec.wait_for(lambda ms: len(sent(ms, MODEL)) == 2), MODEL)
    assert [m.json() for m in models] == [{"version": "2026-08-31.1"}] * 2


def test_command_reply_goes_to_the_response_topic(
    broker: MosquittoBroker,
    journal: Journal,
    make_link: Callable[..., MqttLink],
    recorder: Callable[..., MqttRecorder],
) -> None:
    links: list[MqttLink] = []

    def on_command(suffix: str, payload: bytes, props: MessageProperties) -> None:
        links[0].reply(props, {"command": suffix.rsplit("/", 1)[-1], "ok": True})

    rec = recorder("mes/replies/#")
    status = recorder(STATUS)
    links.append(make_link(journal, handlers={"cmd/+": on_command}))
    wait_online(status)
    publish(
        broker,
        f"{PREFIX}/cmd/reload",
        b"{}",
        ResponseTopic="mes/replies/7",
        CorrelationData=b"req-7",
    )
    [reply] = rec.wait_for(lambda ms: len(ms) == 1)
    assert (reply.topic, reply.correlation_data) == ("mes/replies/7", b"req-7")
    assert reply.json() == {"command": "reload", "ok": True}


def test_password_comes_from_the_systemd_credentials_directory(
    tmp_path: Path, journal: Journal, monkeypatch: pytest.MonkeyPatch
) -> None:
    passwords = tmp_path / "passwd"
    subprocess.run(
        ["mosquitto_passwd", "-b", "-c", str(passwords), "agent", "s3cret"],
        check=True,
        capture_output=True,
    )
    credentials = tmp_path / "credentials"
    credentials.mkdir()
    (credentials / "mqtt_password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(credentials))
    secured = MosquittoBroker(tmp_path / "secured", password_file=passwords)
    secured.start()
    settings = MqttSettings(port=secured.port, prefix=PREFIX, username="agent")
    link = MqttLink(settings, journal, "aoi2", 1, dict, {}, 1000)
    try:
        link.start()
        wait_until(lambda: link.connected, what="an authenticated connection")
    finally:
        link.stop()
        secured.stop()


def make_certificates(folder: Path) -> None:
    """A throw-away CA and a server certificate for 127.0.0.1, made with openssl."""
    key = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    commands = [
        f"req -x509 {key} -subj /CN=test-ca -days 2 -keyout ca.key -out ca.pem",
        f"req {key} -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
        " -keyout server.key -out server.csr",
        "x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2"
        " -copy_extensions copy -out server.pem",
    ]
    for command in commands:
        subprocess.run(["openssl", *command.split()], cwd=folder, check=True, capture_output=True)


def test_tls_connection_with_the_station_ca(tmp_path: Path, journal: Journal) -> None:
    make_certificates(tmp_path)
    listener = [
        f"{name} {tmp_path / f}"
        for name, f in (("cafile", "ca.pem"), ("certfile", "server.pem"), ("keyfile", "server.key"))
    ]
    secured = MosquittoBroker(tmp_path / "tls", extra_config=listener)
    secured.start()
    tls = TlsSettings(enabled=True, ca_file=tmp_path / "ca.pem")
    link = MqttLink(
        MqttSettings(port=secured.port, prefix=PREFIX, tls=tls), journal, "aoi2", 1, dict, {}, 1000
    )
    try:
        link.start()
        wait_until(lambda: link.connected, what="a TLS connection")
    finally:
        link.stop()
        secured.stop()


def test_missing_secret_files_are_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "nowhere" / "mqtt.pass"
    with pytest.raises(ConfigError, match=str(missing)):
        read_password(MqttSettings(username="agent", password_file=missing))

    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    with pytest.raises(ConfigError, match="mqtt_password"):
        read_password(MqttSettings(username="agent"))
    assert read_password(MqttSettings()) is None

    password_file = tmp_path / "given"
    password_file.write_text("from-file\n")
    assert read_password(MqttSettings(username="a", password_file=password_file)) == "from-file"

    tls = TlsSettings(enabled=True, ca_file=tmp_path / "ca.pem")
    journal = Journal(tmp_path / "journal.sqlite")
    with pytest.raises(ConfigError, match=re.escape("ca.pem")):
        MqttLink(MqttSettings(tls=tls), journal, "aoi2", 1, dict, {}, 1000)
    journal.close()


def test_the_paho_internals_the_link_relies_on_are_there() -> None:
    """paho offers no public call for these two (comms/paho_internals.py); a paho upgrade that
    renames them fails here, not on a line PC after a reconnect."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    assert callable(client._send_disconnect)
    client._out_messages[1] = object()
    client._inflight_messages = 1

    forget_unacknowledged(client)

    assert (len(client._out_messages), client._inflight_messages) == (0, 0)
