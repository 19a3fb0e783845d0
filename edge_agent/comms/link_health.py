"""Whether the broker takes the agent: refused credentials and a long outage as readiness reasons.

MQTT is the agent's only way out (verdicts reach the MES only through the broker), so a
broker that refuses the agent, or one out of reach for longer than `health.mqtt_down_max_s`,
makes the station not ready; the verdicts meanwhile wait in the journal's outbox.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.config import MqttSettings
from edge_agent.ops.readiness import Reason

# CONNACK reason codes that name the credentials (MQTT 5; paho maps MQTT 3.1.1's 4 and 5 here).
AUTH_REFUSALS = {134, 135}


@dataclass(frozen=True)
class Outage:
    """Since when the link has been down: the UTC time to show and a monotonic clock reading."""

    since: str
    monotonic: float

    @classmethod
    def now(cls) -> Outage:
        return cls(utc_now(), time.monotonic())

    def seconds(self) -> float:
        return time.monotonic() - self.monotonic


class LinkHealth:
    """The link's last outcome, updated from paho's callbacks (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._down_since: Outage | None = Outage.now()
        self._refusal: tuple[int, str] | None = None

    def connected(self) -> None:
        """The broker accepted the connection."""
        with self._lock:
            self._down_since, self._refusal = None, None

    def refused(self, code: int, text: str) -> None:
        """The broker answered CONNACK with a failure `code` (`text` as paho names it)."""
        with self._lock:
            self._refusal = (code, text)
            self._down_since = self._down_since or Outage.now()

    def lost(self) -> None:
        """No connection: the broker did not answer, or dropped an open connection."""
        with self._lock:
            self._down_since = self._down_since or Outage.now()

    def snapshot(self) -> tuple[Outage | None, tuple[int, str] | None]:
        """(down since, or None while connected; the last refusal, or None)."""
        with self._lock:
            return self._down_since, self._refusal


def link_reasons(health: LinkHealth, settings: MqttSettings, down_max_s: float) -> list[Reason]:
    """The link's readiness reasons: refused by the broker, or out of reach for too long."""
    down_since, refusal = health.snapshot()
    broker = f"{settings.host}:{settings.port}"
    if refusal is not None:
        code, text = refusal
        if code in AUTH_REFUSALS:
            who = f"user {settings.username!r}" if settings.username else "anonymous access"
            remedy = (
                "set mqtt.username and mqtt.password_file (or the systemd credential "
                "mqtt_password) to an account in the broker's password_file"
            )
        else:
            who = "the connection"
            remedy = f"see the broker's log for why it refuses {settings.client_id or 'the agent'}"
        return [
            Reason(
                "mqtt_refused",
                f"the MQTT broker at {broker} refuses {who}: {text}; verdicts wait in the outbox",
                remedy,
            )
        ]
    if down_since is None or not down_max_s:
        return []
    if down_since.seconds() < down_max_s:
        return []
    return [
        Reason(
            "mqtt_unreachable",
            f"the MQTT broker at {broker} has not been reachable since "
            f"{down_since.since}; verdicts wait in the outbox",
            "start the broker or check mqtt.host, mqtt.port, mqtt.tls and the network",
        )
    ]
