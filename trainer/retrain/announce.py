"""Retained state messages from short-lived processes (the trainer, the `models` command)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt
import structlog

from edge_agent.comms.mqtt_security import configure_tls, read_password
from edge_agent.contracts.config import ConfigError, MqttSettings
from edge_agent.store.journal import compact_json

log = structlog.get_logger()

TIMEOUT_S = 10.0


def publish_retained(
    settings: MqttSettings, messages: Mapping[str, Mapping[str, Any]], role: str
) -> bool:
    """Publish `{suffix: payload}` retained at QoS 1 and wait for the broker; False if not sent."""
    if not settings.enabled or not messages:
        return False
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"edge-inspect-{role}-{socket.gethostname()}-{os.getpid()}",
        protocol=mqtt.MQTTv5,
    )
    try:
        if settings.username:
            client.username_pw_set(settings.username, read_password(settings))
        configure_tls(client, settings.tls)
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
