"""The two things the link needs of paho-mqtt that paho offers no public call for, in one place
(paho-mqtt is pinned in pyproject.toml; tests/test_mqtt_link.py checks these attributes exist).
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.reasoncodes import ReasonCode


def disconnect_to_reconnect(client: mqtt.Client) -> None:
    """Send a normal DISCONNECT (the broker discards the will: no "offline" flash) without
    paho's state change, so that its network loop reconnects at once."""
    client._send_disconnect(ReasonCode(PacketTypes.DISCONNECT, identifier=0))


def forget_unacknowledged(client: mqtt.Client) -> None:
    """Drop paho's in-memory copies of unacknowledged QoS>0 messages, which it would re-send
    itself after a reconnect; the outbox re-sends them (marked historical)."""
    with client._out_message_mutex:
        client._out_messages.clear()
        client._inflight_messages = 0
