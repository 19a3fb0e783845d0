"""Ask the running agent to reload (`<prefix>/cmd/reload`, MQTT 5 request/response) and wait
for its reply; None when no agent answered (none running, MQTT off or unreachable)."""

from __future__ import annotations

import json
import os
import secrets
import socket
import threading
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.comms.mqtt_security import configure_tls, read_password
from edge_agent.contracts.config import ConfigError, MqttSettings
from edge_agent.store.journal import compact_json

log = structlog.get_logger()

TIMEOUT_S = 60.0


def ask_reload(
    settings: MqttSettings, payload: dict[str, Any], timeout_s: float = TIMEOUT_S
) -> dict[str, Any] | None:
    """Send `cmd/reload` with `payload`; the agent's reply, or None when none came in time."""
    if not settings.enabled:
        return None
    token = secrets.token_hex(6)
    replies = f"{settings.prefix}/reply/retrain-layout-{token}"
    answered = threading.Event()
    reply: dict[str, Any] = {}
    subscribed = threading.Event()

    def on_message(_client, _userdata, message) -> None:
        try:
            reply.update(json.loads(message.payload))
        except ValueError:
            reply["error"] = "unreadable reply"
        answered.set()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"edge-inspect-layout-{socket.gethostname()}-{os.getpid()}-{token}",
        protocol=mqtt.MQTTv5,
    )
    client.on_message = on_message
    client.on_subscribe = lambda *_args: subscribed.set()
    try:
        if settings.username:
            client.username_pw_set(settings.username, read_password(settings))
        configure_tls(client, settings.tls)
        client.connect(settings.host, settings.port, keepalive=settings.keepalive_s)
        client.loop_start()
        client.subscribe(replies, qos=1)
        if not subscribed.wait(10):
            raise OSError("the broker did not confirm the reply subscription")
        properties = Properties(PacketTypes.PUBLISH)
        properties.ResponseTopic = replies
        properties.CorrelationData = token.encode()
        info = client.publish(
            f"{settings.prefix}/cmd/reload", compact_json(payload), qos=1, properties=properties
        )
        info.wait_for_publish(10)
        if not answered.wait(timeout_s):
            log.warning("agent_reload_unanswered", timeout_s=timeout_s)
            return None
    except (OSError, ValueError, RuntimeError, ConfigError) as exc:
        log.warning("agent_reload_failed", error=str(exc))
        return None
    finally:
        client.disconnect()
        client.loop_stop()
    return reply
