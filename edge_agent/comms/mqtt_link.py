"""The agent's MQTT connection: birth and will, retained state, outbox delivery, inbound topics."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import paho.mqtt.client as mqtt
import structlog
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.comms.link_health import LinkHealth
from edge_agent.comms.mqtt_security import configure_tls, read_password
from edge_agent.comms.outbox_pump import MQTT_MAX_PACKET, WINDOW, OutboxPump
from edge_agent.comms.paho_internals import forget_unacknowledged
from edge_agent.contracts.config import MqttSettings
from edge_agent.contracts.names import SAFE_NAME
from edge_agent.store.journal import Journal, compact_json

log = structlog.get_logger()

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 10
STOP_TIMEOUT_S = 5.0
SESSION_EXPIRY_S = 3600
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
        self._pump = OutboxPump(self._client, journal)
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
        if clean and self.connected and self._journal.outbox_depth():
            self._pump.drained.clear()
            self._pump.events.put(("wake", None))
            self._pump.drained.wait(STOP_TIMEOUT_S)  # the outbox emptied or the link went down
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
        forget_unacknowledged(self._client)

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
