"""The soak's input stream: boards at a fixed rate, alternately dropped and sent over MQTT.

Each input has a part id of its own (`soak-000001`, ...); the station's boards are reused in
turn, so the same content comes back under new part ids (repeats the agent inspects again).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from trainer.harness.local_broker import HOST
from trainer.harness.station_run import Board, drop_board

ROUTES = ("drop", "mqtt")


@dataclass(frozen=True)
class SentInput:
    """One input handed to the agent: its part id, how it went and when (perf_counter)."""

    part_id: str
    route: str
    sent_at: float


class ImagePublisher:
    """A camera gateway: QoS 1 images with the part id as an MQTT 5 user property.

    What it publishes while the broker is away stays queued in the client and goes out on the
    reconnect. `settled()` holds the stream while it waits for the broker's acknowledgement of
    every image in flight, so that stopping the broker does not make the gateway send one twice.
    """

    def __init__(self, port: int, topic: str) -> None:
        self.topic = topic
        self.lock = threading.Lock()
        # Message ids sent and acknowledged; a lock of their own, never held while calling
        # paho (which calls on_publish holding its own lock).
        self._sent: set[int] = set()
        self._acknowledged: set[int] = set()
        self._mids = threading.Lock()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"soak-camera-{uuid.uuid4().hex[:8]}",
            protocol=mqtt.MQTTv5,
        )
        self._client.on_publish = self._on_publish
        self._client.reconnect_delay_set(1, 2)
        self._client.connect(HOST, port)
        self._client.loop_start()

    def _on_publish(self, client, userdata, mid: int, reason, properties) -> None:
        with self._mids:
            self._acknowledged.add(mid)

    def publish(self, image: bytes, part_id: str) -> None:
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = [("part_id", part_id)]
        with self.lock:
            info = self._client.publish(self.topic, image, qos=1, properties=properties)
        with self._mids:
            self._sent.add(info.mid)

    def unacknowledged(self) -> int:
        """Images published that the broker has not acknowledged yet."""
        with self._mids:
            done = self._sent & self._acknowledged
            self._sent -= done
            self._acknowledged -= done
            return len(self._sent)

    def settle(self, timeout: float) -> bool:
        """Wait (the lock held by the caller) until the broker acknowledged every image."""
        deadline = time.monotonic() + timeout
        while self.unacknowledged():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class InputStream(threading.Thread):
    """Sends `count` inputs at `rate` per second, even ones to the drop folder, odd ones by MQTT."""

    def __init__(
        self,
        boards: list[Board],
        drop: Path,
        publisher: ImagePublisher,
        rate: float,
        count: int,
        started_at: float,
    ) -> None:
        """Input `n` (from 0) is sent `n / rate` seconds after `started_at` (perf_counter)."""
        super().__init__(name="soak-stream", daemon=True)
        if not boards:
            raise ValueError("the station has no boards to stream")
        self.boards = boards
        self.drop = drop
        self.publisher = publisher
        self.rate = rate
        self.count = count
        self.sent: list[SentInput] = []
        self.started_at = started_at
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        for index in range(self.count):
            wait = self.started_at + index / self.rate - time.perf_counter()
            if wait > 0 and self._stop_event.wait(wait):
                return
            self._send(index)

    def _send(self, index: int) -> None:
        board = self.boards[index % len(self.boards)]
        part_id = f"soak-{index + 1:06d}"
        route = ROUTES[index % len(ROUTES)]
        if route == "drop":
            sent_at = drop_board(board.image, self.drop, part_id + board.image.suffix)
        else:
            self.publisher.publish(board.image.read_bytes(), part_id)
            sent_at = time.perf_counter()
        with self._lock:
            self.sent.append(SentInput(part_id, route, sent_at))

    def snapshot(self) -> list[SentInput]:
        with self._lock:
            return list(self.sent)

    def stop(self) -> None:
        self._stop_event.set()
