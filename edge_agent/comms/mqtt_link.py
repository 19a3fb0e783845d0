"""The agent's MQTT connection: birth and will, retained state, outbox delivery, inbound topics."""

from __future__ import annotations

import json
import os
import queue
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.comms.link_health import LinkHealth
from edge_agent.contracts.config import ConfigError, MqttSettings, TlsSettings
from edge_agent.contracts.names import SAFE_NAME
from edge_agent.store.journal import Journal, PendingMessage, compact_json

log = structlog.get_logger()

WINDOW = 50
RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 10
IDLE_POLL_S = 1.0
STOP_TIMEOUT_S = 5.0
PUBLISH_OVERHEAD = 16
SESSION_EXPIRY_S = 3600
REDELIVER_MIN_S = 1.0
REDELIVER_MAX_S = 30.0
MQTT_MAX_PACKET = 268_435_455
DISCONNECT_WITH_WILL = 4


class MessageProperties(dict[str, str]):
    """An inbound message's MQTT 5 user properties, plus the reply address for `reply` and its
    delivery: packet id and DUP flag (set by the broker when it resends an unacknowledged
    message, e.g. to a session that was killed before its acknowledgement)."""

    def __init__(
        self,
        user: Iterable[tuple[str, str]] = (),
        response_topic: str | None = None,
        correlation_data: bytes | None = None,
        packet_id: int = 0,
        redelivered: bool = False,
    ) -> None:
        super().__init__(user)
        self.response_topic = response_topic
        self.correlation_data = correlation_data
        self.packet_id = packet_id
        self.redelivered = redelivered

    @classmethod
    def of(cls, message: mqtt.MQTTMessage) -> MessageProperties:
        """Pick user properties, reply address and delivery out of a paho message."""
        properties = message.properties
        return cls(
            getattr(properties, "UserProperty", ()),
            getattr(properties, "ResponseTopic", None),
            getattr(properties, "CorrelationData", None),
            message.mid,
            bool(message.dup),
        )


Handler = Callable[[str, bytes, MessageProperties], bool | None]
"""An inbound topic's handler; returning False leaves the message unacknowledged (redelivered)."""


def read_password(settings: MqttSettings) -> str | None:
    """The broker password: `password_file`, else $CREDENTIALS_DIRECTORY/mqtt_password."""
    if settings.password_file is not None:
        if not settings.username:
            raise ConfigError("mqtt.password_file is set but mqtt.username is empty")
        path, origin = Path(settings.password_file), "mqtt.password_file"
    elif settings.username and os.environ.get("CREDENTIALS_DIRECTORY"):
        path = Path(os.environ["CREDENTIALS_DIRECTORY"]) / "mqtt_password"
        origin = "systemd credential mqtt_password"
    else:
        return None
    try:
        return path.read_text(encoding="utf-8").rstrip("\r\n")
    except OSError as exc:
        raise ConfigError(
            f"{path}: cannot read the MQTT password ({origin}): {exc.strerror}"
        ) from None


def configure_tls(client: mqtt.Client, tls: TlsSettings) -> None:
    if not tls.enabled:
        return
    files = {"ca_file": tls.ca_file, "cert_file": tls.cert_file, "key_file": tls.key_file}
    for key, path in files.items():
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{path}: mqtt.tls.{key} not found")
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ConfigError("mqtt.tls: cert_file and key_file must be set together")
    try:
        client.tls_set(
            ca_certs=str(tls.ca_file) if tls.ca_file else None,
            certfile=str(tls.cert_file) if tls.cert_file else None,
            keyfile=str(tls.key_file) if tls.key_file else None,
        )
    except (OSError, ssl.SSLError) as exc:
        named = ", ".join(str(p) for p in files.values() if p is not None)
        raise ConfigError(f"mqtt.tls: cannot load {named}: {exc}") from None


class _OutboxPump:
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
        # A normal DISCONNECT (the broker discards the will: no "offline" flash) without
        # paho's state change, so that its loop reconnects; paho has no public call for this.
        self._client._send_disconnect(ReasonCode(PacketTypes.DISCONNECT, identifier=0))

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


class MqttLink:
    """One MQTT 5 connection to the plant broker; durable messages come from the journal outbox."""

    def __init__(
        self,
        settings: MqttSettings,
        journal: Journal,
        node: str,
        session: int,
        birth: Callable[[], dict[str, Any]],
        handlers: Mapping[str, Handler],
        max_payload_bytes: int,
        refused: Callable[[str], None] = lambda reason: None,
    ) -> None:
        self._settings = settings
        self._journal = journal
        self._node = node
        self._session = session
        self._birth = birth
        self._handlers = dict(handlers)
        self._max_payload = max_payload_bytes
        self._refused = refused
        self._states: dict[str, bytes] = {}
        self._states_lock = threading.Lock()
        self._started = False
        self.health = LinkHealth()
        self._client = self._make_client(read_password(settings))
        self._pump = _OutboxPump(self._client, journal)
        self._pump_thread = threading.Thread(target=self._pump.run, name="mqtt-outbox", daemon=True)

    def _topic(self, suffix: str) -> str:
        return f"{self._settings.prefix}/{suffix}"

    def _status(self, state: str) -> bytes:
        return compact_json({"state": state, "node": self._node, "session": self._session})

    def _make_client(self, password: str | None) -> mqtt.Client:
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self._settings.client_id or f"edge-inspect-{self._node}",
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        client.suppress_exceptions = True
        client.will_set(self._topic("status"), self._status("offline"), qos=1, retain=True)
        if self._settings.username:
            client.username_pw_set(self._settings.username, password)
        configure_tls(client, self._settings.tls)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(WINDOW)
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    @property
    def connected(self) -> bool:
        """Whether the broker accepted the connection and it is still up."""
        return self._client.is_connected()

    def start(self) -> None:
        """Connect in the background; a broker that is down is retried with back-off.

        The session outlives a connection (SESSION_EXPIRY_S), so that the broker redelivers an
        inbound message that was not acknowledged (a refused spool, a crash) on the reconnect.
        No maximum packet size is announced: the broker would drop a larger message without a
        word, while the agent logs and counts every message it refuses.
        """
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = SESSION_EXPIRY_S
        s = self._settings
        self._client.connect_async(
            s.host, s.port, s.keepalive_s, clean_start=False, properties=properties
        )
        self._started = True
        self._pump_thread.start()
        self._client.loop_start()
        log.info("mqtt_starting", host=s.host, port=s.port, prefix=s.prefix, tls=s.tls.enabled)

    def stop(self, clean: bool = True) -> None:
        """Disconnect; clean: let the outbox drain briefly, then retain "stopped"; else the will."""
        if not self._started:
            return
        if clean:
            deadline = time.monotonic() + STOP_TIMEOUT_S
            while self.connected and self._journal.outbox_depth() and time.monotonic() < deadline:
                time.sleep(0.05)
        self._pump.events.put(("hold", None))
        if clean and self.connected:
            info = self._client.publish(
                self._topic("status"), self._status("stopped"), qos=1, retain=True
            )
            try:
                info.wait_for_publish(STOP_TIMEOUT_S)
            except (RuntimeError, ValueError) as exc:
                log.warning("mqtt_stopped_status_not_sent", error=str(exc))
            self._client.disconnect()
        else:
            will = ReasonCode(PacketTypes.DISCONNECT, identifier=DISCONNECT_WITH_WILL)
            self._client.disconnect(reasoncode=will)
        self._client.loop_stop()
        self._pump.events.put(("stop", None))
        self._pump_thread.join()
        self._started = False
        log.info("mqtt_stopped", clean=clean, outbox_depth=self._journal.outbox_depth())

    def wake(self) -> None:
        """Tell the outbox sender that new rows are waiting."""
        self._pump.events.put(("wake", None))

    def publish_state(self, suffix: str, payload: dict[str, Any]) -> None:
        """Publish retained state (QoS 1), re-published on every (re)connect ("status" by birth)."""
        data = compact_json(payload)
        with self._states_lock:
            self._states[suffix] = data
            if self.connected:
                self._client.publish(self._topic(suffix), data, qos=1, retain=True)

    def publish_volatile(self, suffix: str, payload: dict[str, Any] | bytes, qos: int = 0) -> None:
        """Publish a message that is worth nothing later (stats); dropped while offline."""
        if not self.connected:
            log.debug("mqtt_volatile_dropped", topic=self._topic(suffix))
            return
        data = payload if isinstance(payload, bytes) else compact_json(payload)
        self._client.publish(self._topic(suffix), data, qos=qos)

    def reply(self, properties: MessageProperties, payload: dict[str, Any]) -> None:
        """Answer a request on its MQTT 5 response topic, echoing its correlation data."""
        if not properties.response_topic:
            log.warning("mqtt_reply_without_response_topic")
            return
        reply_properties = Properties(PacketTypes.PUBLISH)
        if properties.correlation_data is not None:
            reply_properties.CorrelationData = properties.correlation_data
        try:
            self._client.publish(
                properties.response_topic, compact_json(payload), qos=1, properties=reply_properties
            )
        except ValueError as exc:
            log.warning("mqtt_reply_bad_topic", topic=properties.response_topic, error=str(exc))

    def _forget_unacknowledged(self) -> None:
        # paho keeps unacknowledged QoS>0 messages in memory and re-sends them itself after a
        # reconnect; the outbox re-sends them (marked historical), so paho's copies would only
        # be duplicates. paho has no public call for this.
        with self._client._out_message_mutex:
            self._client._out_messages.clear()
            self._client._inflight_messages = 0

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason_code.is_failure:
            # Logged when the refusal is new; the readiness reason carries the remedy.
            refusal = (reason_code.value, str(reason_code))
            report = log.debug if self.health.snapshot()[1] == refusal else log.error
            self.health.refused(*refusal)
            report("mqtt_connect_refused", reason=refusal[1])
            return
        self.health.connected()
        try:
            self._announce(client, properties)
        except Exception:
            log.exception("mqtt_on_connect_failed")
            return
        log.info("mqtt_connected", host=self._settings.host, port=self._settings.port)

    def _announce(self, client: mqtt.Client, properties: Properties | None) -> None:
        """Subscribe, publish birth and remembered state, then let the outbox flow."""
        live_after = self._journal.last_outbox_id()
        self._forget_unacknowledged()
        for suffix in self._handlers:
            client.subscribe(self._topic(suffix), qos=1)
        try:
            birth = self._birth()
        except Exception:
            log.exception("mqtt_birth_failed")
            birth = {}
        # The birth may say "degraded" (storage failing); "online" when it says nothing.
        status = {"node": self._node, "session": self._session, "state": "online", **birth}
        client.publish(self._topic("status"), compact_json(status), qos=1, retain=True)
        with self._states_lock:
            for suffix, data in self._states.items():
                if suffix != "status":
                    client.publish(self._topic(suffix), data, qos=1, retain=True)
        window = min(WINDOW, getattr(properties, "ReceiveMaximum", WINDOW))
        max_packet = getattr(properties, "MaximumPacketSize", MQTT_MAX_PACKET)
        self._pump.events.put(("up", (live_after, window, max_packet)))

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        self.health.lost()
        log.warning("mqtt_connect_failed", host=self._settings.host, port=self._settings.port)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._pump.events.put(("down", None))
        self.health.lost()
        report = log.warning if reason_code.is_failure else log.info
        report("mqtt_disconnected", reason=str(reason_code))

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reason_code: ReasonCode,
        properties: Properties | None,
    ) -> None:
        self._pump.events.put(("ack", (mid, reason_code)))

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        """Pass a message to its handler; acknowledge it unless the handler returns False.

        A message that can never be taken (too large, an unexpected or badly named topic, a
        failing handler) is acknowledged after it is logged and counted: a redelivery would
        only fail again.
        """
        acknowledge = True
        try:
            acknowledge = self._take(message)
        except Exception:
            log.exception("mqtt_handler_failed", topic=getattr(message, "_topic", b"")[:200])
            self._refused("handler_failed")
        if acknowledge:
            client.ack(message.mid, message.qos)
            self._pump.events.put(("taken", None))
        else:
            self._pump.events.put(("redeliver", None))

    def _take(self, message: mqtt.MQTTMessage) -> bool:
        try:
            topic = message.topic
        except UnicodeDecodeError:
            log.warning("mqtt_message_refused", reason="topic_not_utf8")
            self._refused("bad_topic")
            return True
        size = len(message.payload)
        if size > self._max_payload:
            log.error("mqtt_message_refused", reason="too_large", topic=topic, size=size,
                      limit=self._max_payload)  # fmt: skip
            self._refused("too_large")
            return True
        prefix = self._settings.prefix + "/"
        suffix = topic[len(prefix) :] if topic.startswith(prefix) else ""
        handler = next(
            (h for f, h in self._handlers.items() if suffix and mqtt.topic_matches_sub(f, suffix)),
            None,
        )
        if handler is None:
            log.warning("mqtt_message_refused", reason="unexpected_topic", topic=topic)
            self._refused("unexpected_topic")
            return True
        if not all(SAFE_NAME.fullmatch(level) for level in suffix.split("/")):
            log.warning("mqtt_message_refused", reason="bad_topic", topic=topic,
                        allowed=SAFE_NAME.pattern)  # fmt: skip
            self._refused("bad_topic")
            return True
        taken = handler(suffix, message.payload, MessageProperties.of(message))
        return taken is not False
