"""Short-lived MQTT clients: retained state from the trainer and the `models` command; a command
to the running agent (`cmd/<name>`, answered on an MQTT 5 response topic) from the OPC UA server
and from `retrain-layout`.

Each connects with the station's `[mqtt]` credentials and TLS, does its one exchange within a
bounded time and leaves: a broker that is down is an answer, never a hang.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.comms.mqtt_security import configure_tls, read_password
from edge_agent.contracts.config import ConfigError, MqttSettings
from edge_agent.store.journal import compact_json

log = structlog.get_logger()

TIMEOUT_S = 10.0


def _client(role: str) -> mqtt.Client:
    return mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"edge-inspect-{role}-{socket.gethostname()}-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )


def _secure(client: mqtt.Client, settings: MqttSettings) -> None:
    """The broker user and TLS of `[mqtt]` (a ConfigError names an unreadable file)."""
    if settings.username:
        client.username_pw_set(settings.username, read_password(settings))
    configure_tls(client, settings.tls)


def publish_retained(
    settings: MqttSettings, messages: Mapping[str, Mapping[str, Any]], role: str
) -> bool:
    """Publish `{suffix: payload}` retained at QoS 1 and wait for the broker; False if not sent."""
    if not settings.enabled or not messages:
        return False
    client = _client(role)
    try:
        _secure(client, settings)
        client.connect(settings.host, settings.port, keepalive=settings.keepalive_s)
        client.loop_start()
        infos = [
            client.publish(f"{settings.prefix}/{suffix}", compact_json(payload), qos=1, retain=True)
            for suffix, payload in messages.items()
        ]
        for info in infos:
            info.wait_for_publish(TIMEOUT_S)
        sent = all(info.is_published() for info in infos)
    except (OSError, ValueError, RuntimeError, ConfigError) as exc:
        log.warning("announce_failed", role=role, topics=list(messages), error=str(exc))
        return False
    finally:
        client.disconnect()
        client.loop_stop()
    if not sent:
        log.warning("announce_not_acknowledged", role=role, topics=list(messages))
    return sent


@dataclass(frozen=True)
class CommandOutcome:
    """What became of a command: `sent` once the broker acknowledged it; the agent's `reply`
    when it came in time; `error` says why not (not sent, or no reply)."""

    sent: bool
    reply: dict[str, Any] | None
    error: str


def send_command(
    settings: MqttSettings,
    name: str,
    role: str,
    timeout_s: float = 5.0,
    payload: Mapping[str, Any] | None = None,
) -> CommandOutcome:
    """Publish `<prefix>/cmd/<name>` (QoS 1, `payload` as JSON) with a response topic and wait
    at most `timeout_s` in all for the broker's acknowledgement and the agent's reply."""
    if not settings.enabled:
        return CommandOutcome(False, None, "MQTT is off in this station's config ([mqtt] enabled)")
    deadline = time.monotonic() + timeout_s
    reply_topic = f"{settings.prefix}/reply/{role}-{secrets.token_hex(6)}"
    connected, subscribed = threading.Event(), threading.Event()
    refused: list[str] = []
    replies: queue.Queue[bytes] = queue.Queue()

    def on_connect(client: mqtt.Client, userdata: Any, flags: Any, code: Any, props: Any) -> None:
        if code.is_failure:
            refused.append(f"the broker refused the connection: {code}")
        else:
            client.subscribe(reply_topic, qos=1)
        connected.set()

    client = _client(role)
    try:
        _secure(client, settings)
        client.connect_timeout = timeout_s
        client.on_connect = on_connect
        client.on_subscribe = lambda *args: subscribed.set()
        client.on_message = lambda c, u, message: replies.put(message.payload)
        client.connect(settings.host, settings.port, keepalive=settings.keepalive_s)
        client.loop_start()
        where = f"broker {settings.host}:{settings.port}"
        if not connected.wait(_left(deadline)):
            return CommandOutcome(False, None, f"no answer from the {where} in {timeout_s:g} s")
        if refused:
            return CommandOutcome(False, None, refused[0])
        subscribed.wait(_left(deadline))
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = reply_topic
        body = compact_json(dict(payload or {}))
        info = client.publish(f"{settings.prefix}/cmd/{name}", body, qos=1, properties=properties)
        info.wait_for_publish(_left(deadline))
        if not info.is_published():
            return CommandOutcome(False, None, f"the {where} did not acknowledge the command")
        try:
            return CommandOutcome(True, json.loads(replies.get(timeout=_left(deadline))), "")
        except queue.Empty:
            return CommandOutcome(True, None, f"sent; no reply from the agent in {timeout_s:g} s")
        except ValueError:
            return CommandOutcome(True, None, "sent; the agent's reply was not JSON")
    except (OSError, ValueError, RuntimeError, ConfigError) as exc:
        where = f"{settings.host}:{settings.port}"
        return CommandOutcome(False, None, f"cannot reach the broker at {where}: {exc}")
    finally:
        client.disconnect()
        client.loop_stop()


def _left(deadline: float) -> float:
    return max(0.0, deadline - time.monotonic())
