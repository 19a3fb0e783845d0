"""systemd notify messages, received on a datagram socket standing in for systemd."""

from __future__ import annotations

import os
import socket
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.ops import sdnotify
from edge_agent.ops.sdnotify import Watchdog


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def systemd(monkeypatch) -> Iterator[socket.socket]:
    """A bound AF_UNIX datagram socket named by $NOTIFY_SOCKET, as systemd provides."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "notify"
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.bind(str(path))
            sock.setblocking(False)
            monkeypatch.setenv("NOTIFY_SOCKET", str(path))
            yield sock


def received(sock: socket.socket) -> list[bytes]:
    messages = []
    while True:
        try:
            messages.append(sock.recv(4096))
        except BlockingIOError:
            return messages


def test_ready_status_and_stopping_reach_the_socket(systemd):
    assert sdnotify.ready("3 models loaded")
    assert sdnotify.status("inspecting")
    assert sdnotify.stopping()

    assert received(systemd) == [
        b"READY=1\nSTATUS=3 models loaded",
        b"STATUS=inspecting",
        b"STOPPING=1",
    ]


def test_abstract_namespace_socket(monkeypatch):
    name = f"edge-inspect-test-{uuid.uuid4().hex}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.setblocking(False)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)

        assert sdnotify.ready()
        assert received(sock) == [b"READY=1"]


def test_without_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)

    assert sdnotify.notify("READY=1") is False
    watchdog = Watchdog()
    watchdog.progress()
    assert not watchdog.enabled
    assert watchdog.tick() is False


def test_a_vanished_socket_is_reported_not_raised(monkeypatch, tmp_path):
    monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "gone"))

    assert sdnotify.notify("READY=1") is False


def test_watchdog_pets_only_after_progress(systemd, monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    clock = FakeClock()
    watchdog = Watchdog(clock=clock)
    assert watchdog.timeout_s == 4.0 and watchdog.tick_interval_s == 1.0

    assert watchdog.tick() is False
    assert received(systemd) == []

    watchdog.progress()
    assert watchdog.tick() is True
    assert received(systemd) == [b"WATCHDOG=1"]

    clock.now += 5
    assert watchdog.tick() is False, "no progress since the last pet: systemd must notice"
    assert received(systemd) == []

    watchdog.progress()
    assert watchdog.tick() is True
    assert received(systemd) == [b"WATCHDOG=1"]


def test_watchdog_pets_are_spaced_by_the_tick_interval(systemd):
    clock = FakeClock()
    watchdog = Watchdog(4.0, clock=clock)

    watchdog.progress()
    assert watchdog.tick() is True
    watchdog.progress()
    clock.now += 0.5
    assert watchdog.tick() is False
    clock.now += 0.5
    assert watchdog.tick() is True
    assert received(systemd) == [b"WATCHDOG=1", b"WATCHDOG=1"]


def test_watchdog_meant_for_another_process_is_off(monkeypatch):
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid() + 1))

    assert not Watchdog().enabled
