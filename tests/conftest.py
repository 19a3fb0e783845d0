"""Fixtures shared by the test suite: a real mosquitto per test and a recorder factory."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mqtt_broker import MosquittoBroker, MqttRecorder


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A fresh mosquitto on a free loopback port, stopped after the test."""
    server = MosquittoBroker(tmp_path / "broker")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def recorder(broker: MosquittoBroker) -> Iterator[Callable[..., MqttRecorder]]:
    """Make recorders on `broker` (`recorder("plant/#")`); all are closed after the test."""
    made: list[MqttRecorder] = []

    def make(topic_filter: str, persistent: bool = True) -> MqttRecorder:
        made.append(MqttRecorder(broker, topic_filter, persistent=persistent))
        return made[-1]

    yield make
    for item in made:
        item.close()
