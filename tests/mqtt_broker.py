"""A real mosquitto on a free loopback port, and a recording MQTT client, for tests."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from trainer.harness.local_broker import START_TIMEOUT_S, LocalBroker

# The tests drive the same broker wrapper the demo and the benches use.
MosquittoBroker = LocalBroker


@dataclass(frozen=True)
class Received:
    """One message as a subscriber saw it; `dup` marks the broker re-delivering it."""

    topic: str
    payload: bytes
    qos: int
    retain: bool
    dup: bool
    user_properties: dict[str, str] = field(default_factory=dict)
    correlation_data: bytes | None = None

    def json(self) -> Any:
        """The payload parsed as JSON."""
        return json.loads(self.payload)


class MqttRecorder:
    """Subscribes to a topic filter and keeps every message; survives broker restarts.

    With `persistent` (default) it keeps a broker-side session (QoS 1), so messages published
    while it reconnects after a clean broker restart are still delivered to it.
    """

    def __init__(self, broker: MosquittoBroker, topic_filter: str, persistent: bool = True) -> None:
        self.topic_filter = topic_filter
        self._messages: list[Received] = []
        self._changed = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"recorder-{uuid.uuid4().hex[:12]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 1)
        properties = Properties(PacketTypes.CONNECT)
        if persistent:
            properties.SessionExpiryInterval = 600
        self.client.connect(
            broker.host,
            broker.port,
            keepalive=10,
            clean_start=not persistent,
            properties=properties,
        )
        self.client.loop_start()
        if not self._subscribed.wait(START_TIMEOUT_S):
            self.close()
            raise RuntimeError(f"recorder could not subscribe to {topic_filter!r}")

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any, props: Any
    ) -> None:
        if not flags.session_present:
            client.subscribe(self.topic_filter, qos=1)

    def _on_subscribe(
        self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any, props: Any
    ) -> None:
        self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        props = message.properties
        received = Received(
            topic=message.topic,
            payload=message.payload,
            qos=message.qos,
            retain=bool(message.retain),
            dup=bool(message.dup),
            user_properties=dict(getattr(props, "UserProperty", ())),
            correlation_data=getattr(props, "CorrelationData", None),
        )
        with self._changed:
            self._messages.append(received)
            self._changed.notify_all()

    @property
    def messages(self) -> list[Received]:
        """A snapshot of everything received so far, in arrival order."""
        with self._changed:
            return list(self._messages)

    def on_topic(self, topic: str) -> list[Received]:
        """The messages received on exactly this topic."""
        return [m for m in self.messages if m.topic == topic]

    def wait_for(
        self, predicate: Callable[[list[Received]], bool], timeout: float = 30.0
    ) -> list[Received]:
        """Wait until `predicate(messages)` holds; return the messages or fail the test."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not predicate(list(self._messages)):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    seen = [(m.topic, m.payload[:120], m.retain, m.dup) for m in self._messages]
                    raise AssertionError(f"condition not met on {self.topic_filter!r}; got {seen}")
                self._changed.wait(remaining)
            return list(self._messages)

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll `condition` until it holds, or fail the test saying `what` was awaited."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or condition}")
        time.sleep(0.02)
