"""The outbox sender: journal outbox rows published in id order while the link is up, each row
deleted only on its acknowledgement; one thread owns all delivery state."""

from __future__ import annotations

import json
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt
import structlog

from edge_agent.comms.paho_internals import disconnect_to_reconnect
from edge_agent.store.journal import Journal, PendingMessage, compact_json

log = structlog.get_logger()

WINDOW = 50
IDLE_POLL_S = 1.0
PUBLISH_OVERHEAD = 16
REDELIVER_MIN_S = 1.0
REDELIVER_MAX_S = 30.0
MQTT_MAX_PACKET = 268_435_455


class OutboxPump:
    """Sends outbox rows in id order while connected; owns all delivery state, in one thread.

    paho's callbacks only post events ("up", "down", "ack", "wake", "hold", "stop",
    "redeliver", "taken") to it.
    A JSON row is marked `"historical": true` unless it was enqueued after the current
    connection came up (id > live_after): rows of earlier sessions, rows that waited while the
    link was down and rows re-sent after a reconnect all have smaller ids. A row larger than
    the broker's maximum packet size can never be delivered and is dropped, not retried.
    """

    def __init__(self, client: mqtt.Client, journal: Journal) -> None:
        self._client = client
        self._journal = journal
        self.events: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._online = False
        self._holding = False
        self._window = WINDOW
        self._max_packet = MQTT_MAX_PACKET
        self._live_after = 0
        self._cursor = 0
        self._inflight: dict[int, int] = {}
        self._redeliver_at: float | None = None
        self._redeliver_wait = REDELIVER_MIN_S
        self.drained = threading.Event()
        """Cleared by a stopping link that waits; set again once nothing is left to wait for:
        the outbox is empty, or the link is down."""
        self.drained.set()

    def run(self) -> None:
        """Handle events until "stop"; between events, keep the in-flight window full."""
        while True:
            batch = self._next_events()
            try:
                if self._handle(batch):
                    return
                if self._online and not self._holding:
                    self._fill()
                self._redeliver_when_due()
                if not self.drained.is_set() and (
                    not self._online or not self._journal.outbox_depth()
                ):
                    self.drained.set()
            except Exception:
                log.exception("outbox_pump_failed")

    def _redeliver_when_due(self) -> None:
        """Reconnect once a refused message's back-off has passed: the broker resends every
        unacknowledged message of the (persistent) session on the reconnect."""
        if self._redeliver_at is None or time.monotonic() < self._redeliver_at:
            return
        self._redeliver_at = None
        if not self._online:
            return  # a reconnect is under way anyway
        log.info("mqtt_reconnect_for_redelivery", waited_s=self._redeliver_wait)
        self._redeliver_wait = min(2 * self._redeliver_wait, REDELIVER_MAX_S)
        disconnect_to_reconnect(self._client)

    def _next_events(self) -> list[tuple[str, Any]]:
        try:
            batch = [self.events.get(timeout=IDLE_POLL_S)]
        except queue.Empty:
            return []
        while True:
            try:
                batch.append(self.events.get_nowait())
            except queue.Empty:
                return batch

    def _handle(self, batch: list[tuple[str, Any]]) -> bool:
        acked: list[int] = []
        for kind, value in batch:
            if kind == "ack":
                mid, reason = value
                message_id = self._inflight.pop(mid, None)
                if message_id is None:
                    continue
                if reason.is_failure:
                    log.error("mqtt_publish_rejected", message_id=message_id, reason=str(reason))
                else:
                    acked.append(message_id)
            elif kind == "up":
                self._live_after, self._window, self._max_packet = value
                self._online, self._cursor = True, 0
                self._inflight.clear()
            elif kind == "down":
                self._online = False
                self._inflight.clear()
            elif kind == "hold":
                self._holding = True
            elif kind == "redeliver" and self._redeliver_at is None:
                self._redeliver_at = time.monotonic() + self._redeliver_wait
            elif kind == "taken":
                self._redeliver_wait = REDELIVER_MIN_S
        if acked:
            self._journal.acknowledge_many(acked)
        return any(kind == "stop" for kind, _ in batch)

    def _fill(self) -> None:
        room = self._window - len(self._inflight)
        if room <= 0:
            return
        sent: list[int] = []
        undeliverable: list[int] = []
        for row in self._journal.pending(room, after=self._cursor):
            payload = self._wire_payload(row)
            size = len(payload) + len(row.topic.encode("utf-8")) + PUBLISH_OVERHEAD
            if size > self._max_packet:
                log.error(
                    "outbox_message_dropped_too_large",
                    message_id=row.id,
                    topic=row.topic,
                    size=size,
                    broker_limit=self._max_packet,
                )
                undeliverable.append(row.id)
                self._cursor = row.id
                continue
            info = self._client.publish(row.topic, payload, qos=row.qos, retain=row.retain)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                log.warning(
                    "mqtt_publish_deferred", message_id=row.id, rc=mqtt.error_string(info.rc)
                )
                break
            self._inflight[info.mid] = row.id
            self._cursor = row.id
            sent.append(row.id)
        if undeliverable:
            self._journal.acknowledge_many(undeliverable)
        if sent:
            self._journal.count_attempts(sent)

    def _wire_payload(self, row: PendingMessage) -> bytes:
        if not row.is_json or row.id > self._live_after:
            return row.payload
        try:
            data = json.loads(row.payload)
        except ValueError:
            log.warning("outbox_json_unreadable", message_id=row.id, topic=row.topic)
            return row.payload
        if not isinstance(data, dict):
            return row.payload
        return compact_json({**data, "historical": True})
