"""A 90 MB image over MQTT, with a real mosquitto and a real agent (issue 13, case 7).

Above 4x `limits.max_payload_bytes` (80 MB by default) the agent refuses the image aloud: a log
line and `edge_inspect_mqtt_refused_total{reason="too_large"}`, stays ready, and the next image
gets its verdict. An image above the *broker's* limit never reaches the agent: the sender gets
the error, the agent has nothing to log (README's MQTT paragraph says to set the broker's limit
above 4x). The sender runs in its own process, so at most one copy of the payload is in each.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fuzz_station import CAMERA, PREFIX, make_station
from mqtt_broker import MosquittoBroker, MqttRecorder, wait_until
from structlog.testing import capture_logs
from test_pipeline import photograph, textured_reference

from edge_agent.contracts.config import LimitsSettings, load_config
from edge_agent.daemon import Agent

IMAGE_BYTES = 90_000_000
REPO = Path(__file__).resolve().parents[1]
# The sender: publishes a file at QoS 1 (part id as a user property), prints what it was told.
SENDER = """
import json, sys, threading
import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
host, port, topic, path, part_id = sys.argv[1:]
told, done = {}, threading.Event()
def on_publish(client, userdata, mid, reason, properties):
    told["puback"] = str(reason); done.set()
def on_disconnect(client, userdata, flags, reason, properties):
    told.setdefault("disconnect", str(reason)); done.set()
client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
client.on_publish, client.on_disconnect = on_publish, on_disconnect
client.connect(host, int(port))
client.loop_start()
with open(path, "rb") as fh:
    payload = fh.read()
properties = Properties(PacketTypes.PUBLISH)
properties.UserProperty = [("part_id", part_id)]
client.publish(topic, payload, qos=1, properties=properties)
del payload
done.wait(120)
print(json.dumps(told))
client.disconnect()
client.loop_stop()
"""


def send(broker: MosquittoBroker, path: Path, part_id: str) -> dict[str, str]:
    """Publish a file's bytes to `<prefix>/image/<camera>` from another process."""
    topic = f"{PREFIX}/image/{CAMERA}"
    args = [sys.executable, "-c", SENDER, broker.host, str(broker.port), topic, str(path), part_id]
    done = subprocess.run(args, capture_output=True, text=True, timeout=180, check=True)
    return json.loads(done.stdout)


def too_large(agent: Agent) -> float:
    sample = agent.telemetry.registry.get_sample_value
    return sample("edge_inspect_mqtt_refused_total", {"reason": "too_large"}) or 0.0


def refusals(agent: Agent) -> float:
    """Every refusal the agent counted, whatever its reason."""
    return sum(
        sample.value
        for metric in agent.telemetry.registry.collect()
        if metric.name == "edge_inspect_mqtt_refused"
        for sample in metric.samples
        if sample.name.endswith("_total")
    )


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    """A 90 MB payload (a sparse file: nothing written) and a normal board photo."""
    huge = tmp_path / "huge.bin"
    with huge.open("wb") as fh:
        fh.truncate(IMAGE_BYTES)
    board = tmp_path / "board.png"
    board.write_bytes(photograph(textured_reference()))
    return {"huge": huge, "board": board}


@pytest.fixture
def start_agent(tmp_path: Path) -> Iterator[Callable[[MosquittoBroker], Agent]]:
    """Start a real agent (default limits, J1's real model) on a broker."""
    started: list[Agent] = []

    def start(broker: MosquittoBroker) -> Agent:
        config = load_config(make_station(tmp_path))
        mqtt = config.mqtt.model_copy(update={"host": broker.host, "port": broker.port})
        agent = Agent(config.model_copy(update={"mqtt": mqtt}))
        agent.start()
        started.append(agent)
        wait_until(lambda: agent.link is not None and agent.link.connected, 30, "the agent")
        return agent

    yield start
    for agent in started:
        agent.stop()


def test_a_90_mb_image_is_refused_aloud_the_agent_stays_ready_and_the_next_image_is_inspected(
    broker: MosquittoBroker,
    recorder: Callable[..., MqttRecorder],
    start_agent: Callable[[MosquittoBroker], Agent],
    files: dict[str, Path],
) -> None:
    verdicts = recorder(f"{PREFIX}/verdict")
    agent = start_agent(broker)
    limit = 4 * agent.config.limits.max_payload_bytes
    assert limit < IMAGE_BYTES  # the defaults: 90 MB is above 4 x 20 MB

    with capture_logs() as logs:
        told = send(broker, files["huge"], "SN-HUGE")
        wait_until(lambda: too_large(agent) == 1, 60, "the counted refusal")

    assert told == {"puback": "Success"}  # the broker took it; the agent refused it
    refused = [entry for entry in logs if entry["event"] == "mqtt_message_refused"]
    assert refused == [
        {
            "event": "mqtt_message_refused",
            "log_level": "error",
            "reason": "too_large",
            "topic": f"{PREFIX}/image/{CAMERA}",
            "size": IMAGE_BYTES,
            "limit": limit,
        }
    ]
    assert agent.readiness()[0] and agent.link.connected
    assert not [p for p in agent.spool.inbox.rglob("*") if p.is_file()]  # never spooled

    send(broker, files["board"], "SN-NEXT")

    received = verdicts.wait_for(lambda messages: len(messages) >= 1, 60)
    assert [(m.json()["part_id"], m.json()["evaluation"]) for m in received] == [("SN-NEXT", "OK")]
    assert too_large(agent) == 1 and agent.readiness()[0]


def test_an_image_above_the_brokers_limit_is_an_error_for_the_sender_and_unseen_by_the_agent(
    tmp_path: Path,
    start_agent: Callable[[MosquittoBroker], Agent],
    files: dict[str, Path],
) -> None:
    broker = MosquittoBroker(tmp_path / "broker", extra_config=["max_packet_size 50000000"])
    broker.start()
    try:
        verdicts = MqttRecorder(broker, f"{PREFIX}/verdict")
        agent = start_agent(broker)

        with capture_logs() as logs:
            told = send(broker, files["huge"], "SN-HUGE")
            send(broker, files["board"], "SN-NEXT")  # delivered after anything sent before it
            received = verdicts.wait_for(lambda messages: len(messages) >= 1, 60)
        verdicts.close()
    finally:
        broker.stop()

    # The sender is disconnected without an acknowledgement: it knows the image was not taken.
    assert "puback" not in told and told["disconnect"]
    assert "disconnected due to oversize packet" in broker.log_tail()
    assert [m.json()["part_id"] for m in received] == ["SN-NEXT"]
    assert refusals(agent) == 0  # the agent never saw the image: nothing to log or count
    assert not [entry for entry in logs if "refused" in entry["event"]]


def test_the_example_broker_takes_every_image_the_agent_can_refuse_aloud() -> None:
    """deploy/mosquitto.conf states a packet limit above 4x the default payload limit."""
    text = (REPO / "deploy" / "mosquitto.conf").read_text(encoding="utf-8")
    limits = re.findall(r"^max_packet_size (\d+)$", text, re.MULTILINE)

    assert len(limits) == 1
    assert int(limits[0]) > 4 * LimitsSettings().max_payload_bytes + 65_536  # + topic, headers
