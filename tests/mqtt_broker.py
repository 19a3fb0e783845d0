"""A real mosquitto on a free loopback port, and a recording MQTT client, for tests."""

from __future__ import annotations

import getpass
import json
import shutil
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0


def _mosquitto_binary() -> str:
    found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise RuntimeError(
            "mosquitto not found; the MQTT tests need a real broker: apt-get install mosquitto"
        )
    return found


def free_port() -> int:
    """A loopback TCP port that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


class MosquittoBroker:
    """A mosquitto process of our own; `restart()` keeps the port and, by default, its state.

    With `persistence` (default) retained messages and persistent sessions survive a clean
    restart, as on a plant broker; `kill()` loses what was not saved. A `password_file`
    (made with mosquitto_passwd) turns anonymous access off.
    """

    def __init__(
        self,
        workdir: Path,
        extra_config: Sequence[str] = (),
        persistence: bool = True,
        password_file: Path | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.host = HOST
        self.port = free_port()
        self.log_path = self.workdir / "mosquitto.log"
        self.config_path = self.workdir / "mosquitto.conf"
        lines = [
            f"listener {self.port} {HOST}",
            "allow_anonymous false" if password_file else "allow_anonymous true",
            *([f"password_file {password_file}"] if password_file else []),
            f"user {getpass.getuser()}",
            f"persistence {'true' if persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            *extra_config,
        ]
        self.config_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        self._binary = _mosquitto_binary()
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start mosquitto and wait until the port accepts connections."""
        with self.log_path.open("ab") as log_file:
            self._process = subprocess.Popen(
                [self._binary, "-c", str(self.config_path)],
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"mosquitto exited at start-up:\n{self.log_tail()}")
            try:
                socket.create_connection((HOST, self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"mosquitto did not listen on {HOST}:{self.port}:\n{self.log_tail()}")

    def stop(self) -> None:
        """Stop cleanly (SIGTERM: mosquitto saves its state) and wait for the process."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.send_signal(signal.SIGCONT)
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """Crash the broker (SIGKILL): unsaved state is lost."""
        if self._process is None:
            return
        process, self._process = self._process, None
        process.kill()
        process.wait()

    def freeze(self) -> None:
        """Pause the broker (SIGSTOP): connections stay open but nothing is answered."""
        assert self._process is not None
        self._process.send_signal(signal.SIGSTOP)

    def restart(self, crash: bool = False) -> None:
        """Stop (or kill, with `crash`) and start again on the same port."""
        if crash:
            self.kill()
        else:
            self.stop()
        self.start()

    def log_tail(self, lines: int = 30) -> str:
        """The end of mosquitto's own log, for failure messages."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


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
