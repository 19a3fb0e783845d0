"""A slow model load holds up neither the watchdog loop nor paho's network thread.

The agent runs in this process with a real template-distance model, a real mosquitto and a
datagram socket standing in for systemd's notify socket. The registry's bundle loader is
wrapped so that a load waits until the test lets it go: while it waits, the main loop keeps
petting the watchdog, an MQTT image still gets its verdict, and `cmd/reload` is answered once
the load is done.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.client as mqtt
import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder, wait_until
from onnx_fixtures import install_template_model
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from retrain_station import publish

from edge_agent.contracts.config import load_config
from edge_agent.daemon import Agent
from edge_agent.feedback.model_loader import THREAD_NAME
from edge_agent.inspect.scoring import ConnectorModel

PREFIX = "plant/line9/aoi1"
REPLIES = "mes/replies"
FIRST, SECOND = "2026-01-01.1", "2026-01-02.1"
BOX = (10, 10, 60, 40)


def _write_station(root: Path, broker: MosquittoBroker) -> tuple[Path, bytes]:
    """A station whose J1 model v1 is active; returns the config and the reference's bytes."""
    rng = np.random.default_rng(0)
    reference = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (5, 5), 0)
    cv2.imwrite(str(root / "reference.png"), reference)
    install(root / "models", reference, FIRST)
    lines = [
        "[station]",
        'reference_image = "reference.png"',
        "[mqtt]",
        f'host = "{broker.host}"',
        f"port = {broker.port}",
        f'prefix = "{PREFIX}"',
        "stats_interval_s = 3600",
        "[health]",
        "enabled = false",
        "[retention]",
        "keep_crops = false",
        "[connectors.J1]",
        f"box = {list(BOX)}",
    ]
    (root / "edge.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "edge.toml", (root / "reference.png").read_bytes()


def install(models: Path, reference: np.ndarray, version: str) -> None:
    x, y, w, h = BOX
    template = reference[y : y + h, x : x + w].astype(np.float32)
    install_template_model(models, "J1", version, template, 16, 1e4)


@pytest.fixture
def systemd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[socket.socket]:
    """systemd's notify socket with a 2 s watchdog (the main loop pets it every 0.5 s)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(tmp_path / "notify"))
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        monkeypatch.setenv("WATCHDOG_USEC", "2000000")
        monkeypatch.delenv("WATCHDOG_PID", raising=False)
        yield sock


def _pets(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            count += sock.recv(4096) == b"WATCHDOG=1"
        except BlockingIOError:
            return count


def _wait_for_pets(sock: socket.socket, count: int, timeout: float) -> None:
    deadline, seen = time.monotonic() + timeout, 0
    while (seen := seen + _pets(sock)) < count:
        assert time.monotonic() < deadline, f"{seen} watchdog pets in {timeout} s, not {count}"
        time.sleep(0.05)


def _send_image(broker: MosquittoBroker, image: bytes, part_id: str) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        properties = Properties(PacketTypes.PUBLISH)
        properties.UserProperty = [("part_id", part_id)]
        topic = f"{PREFIX}/image/cam1"
        client.publish(topic, image, qos=1, properties=properties).wait_for_publish(30)
    finally:
        client.disconnect()
        client.loop_stop()


def _version_of(recorder: MqttRecorder, part_id: str) -> str:
    messages = recorder.wait_for(
        lambda ms: any(m.json()["part_id"] == part_id for m in ms), timeout=60
    )
    verdict = next(m.json() for m in messages if m.json()["part_id"] == part_id)
    return verdict["connectors"][0]["model"]["version"]


def test_a_blocked_model_load_leaves_the_watchdog_and_mqtt_answering(
    tmp_path: Path, broker: MosquittoBroker, recorder, systemd: socket.socket
) -> None:
    config_path, image = _write_station(tmp_path, broker)
    verdicts, replies = recorder(f"{PREFIX}/verdict"), recorder(REPLIES)
    models = recorder(f"{PREFIX}/model/J1")
    agent = Agent(load_config(config_path))
    agent.start()
    stop = threading.Event()
    main_loop = threading.Thread(target=agent.run_until, args=(stop,), daemon=True)
    entered, release = threading.Event(), threading.Event()
    loaded_on: list[str] = []

    def slow_load(bundle: Path, threads: int) -> ConnectorModel:
        loaded_on.append(threading.current_thread().name)
        entered.set()
        release.wait(60)
        return ConnectorModel.load(bundle, threads)

    agent.registry.load_bundle = slow_load
    main_loop.start()
    try:
        wait_until(lambda: agent.link is not None and agent.link.connected, 30, "the broker")
        reference = cv2.imread(str(tmp_path / "reference.png"))
        install(agent.config.paths.models, reference, SECOND)  # `active` -> the new version
        assert entered.wait(30), "the main loop never scheduled the new model's load"
        _pets(systemd)

        publish(broker, f"{PREFIX}/cmd/reload", {}, response_topic=REPLIES)
        _send_image(broker, image, "SN1")  # handled by paho while the load is blocked

        assert _version_of(verdicts, "SN1") == FIRST  # the old model serves meanwhile
        _wait_for_pets(systemd, 3, timeout=30)  # the main loop ticks on during the load
        assert not replies.messages  # the reload waits its turn behind the load
        release.set()

        answer = replies.wait_for(lambda ms: len(ms) == 1, timeout=60)[0].json()
        models.wait_for(lambda ms: any(m.json()["version"] == SECOND for m in ms), timeout=30)
        _send_image(broker, image, "SN2")
        assert _version_of(verdicts, "SN2") == SECOND
        assert answer["command"] == "reload" and answer["ok"] is True
        assert loaded_on and all(name.startswith(THREAD_NAME) for name in loaded_on)
    finally:
        release.set()
        stop.set()
        main_loop.join()
        agent.stop()
