"""Drive a real agent process on a station folder: feed boards, collect verdicts over MQTT.

Used by `edge-inspect demo` and `edge-inspect bench`; latency is measured from the moment a
board file is complete in the drop folder to the verdict reaching an MQTT subscriber.
"""

from __future__ import annotations

import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.contracts.atomic import replacing
from trainer.harness.local_broker import free_port
from trainer.settings import TrainerConfig, load_config

SESSION_EXPIRY_S = 3600


@dataclass(frozen=True)
class Board:
    """A board image of the station and the generator's truth for each connector."""

    image: Path
    split: str
    labels: dict[str, str]
    kinds: dict[str, str | None]

    @property
    def part_id(self) -> str:
        return self.image.stem


def load_boards(station: Path, splits: tuple[str, ...] = ("test",)) -> list[Board]:
    """Boards of the given splits from `<station>/boards/labels.json`, in file order."""
    entries = json.loads((station / "boards" / "labels.json").read_text(encoding="utf-8"))
    return [
        Board(
            image=station / "boards" / entry["image"],
            split=entry["split"],
            labels={cid: c["label"] for cid, c in entry["connectors"].items()},
            kinds={cid: c.get("kind") for cid, c in entry["connectors"].items()},
        )
        for entry in entries
        if entry["split"] in splits
    ]


def end_child(process: subprocess.Popen | None, signum: int) -> None:
    """Send `signum` to a child that still runs and wait for it to exit."""
    if process is not None and process.poll() is None:
        process.send_signal(signum)
        process.wait(timeout=30)


def cpu_seconds(process: subprocess.Popen | None) -> float:
    """User and system CPU time a running child has used so far (all its threads; 0 once it
    has ended)."""
    if process is None or process.poll() is not None:
        return 0.0
    fields = Path(f"/proc/{process.pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


class AgentProcess:
    """`edge-inspect run` as a child process, pointed at a private broker and health port."""

    def __init__(
        self, config_path: Path, broker_port: int, log_path: Path, state: Path | None = None
    ) -> None:
        """`state` replaces the config's state folder (a run of its own: fresh journal)."""
        self.config_path = Path(config_path)
        self.health_port = free_port()
        self.env = {
            **os.environ,
            "EDGE_INSPECT_MQTT__PORT": str(broker_port),
            "EDGE_INSPECT_HEALTH__PORT": str(self.health_port),
            "EDGE_INSPECT_LOGGING__FORMAT": "json",
            **({"EDGE_INSPECT_PATHS__STATE": str(Path(state).resolve())} if state else {}),
        }
        self.config: TrainerConfig = load_config(config_path)
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None

    def start(self) -> AgentProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")  # noqa: SIM115 - owned by the child for its lifetime
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge_agent.cli", "run", "--config", str(self.config_path)],
            env=self.env,
            stdout=log,
            stderr=log,
            preexec_fn=die_with_parent,
        )
        log.close()
        return self

    def ready(self) -> bool:
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    def wait_ready(self, timeout: float = 120.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(
                    f"agent exited with {self.process.returncode}: see {self.log_path}"
                )
            if self.ready():
                return
            time.sleep(0.2)
        raise RuntimeError(f"agent not ready after {timeout:.0f} s: see {self.log_path}")

    def memory_mb(self) -> dict[str, float]:
        """Resident memory now and at its peak (VmRSS, VmHWM) in MB."""
        fields = {}
        if self.process is None:
            return fields
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                fields[key] = int(value.split()[0]) / 1024
        return fields

    def kill(self, signum: int = signal.SIGKILL) -> None:
        end_child(self.process, signum)

    def stop(self) -> None:
        self.kill(signal.SIGTERM)


@dataclass
class VerdictListener:
    """Collects verdicts and heatmap topics published under a prefix.

    With a `client_id` the subscription is a persistent session (QoS 1, clean_start false,
    1 h expiry) that reconnects on its own, so verdicts published while it reconnects after a
    broker restart are still delivered to it.
    """

    port: int
    prefix: str
    client_id: str | None = None
    verdicts: list[tuple[float, dict]] = field(default_factory=list)
    heatmaps: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self._cond = threading.Condition()
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id or "", protocol=mqtt.MQTTv5
        )
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message
        if self.client_id is None:
            self._client.connect("127.0.0.1", self.port)
        else:
            session = Properties(PacketTypes.CONNECT)
            session.SessionExpiryInterval = SESSION_EXPIRY_S
            self._client.reconnect_delay_set(1, 2)
            self._client.connect("127.0.0.1", self.port, clean_start=False, properties=session)
        self._client.loop_start()

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        client.subscribe([(f"{self.prefix}/verdict", 1), (f"{self.prefix}/heatmap/#", 0)])

    def _on_message(self, client, userdata, message) -> None:
        now = time.perf_counter()
        with self._cond:
            if message.topic.endswith("/verdict"):
                self.verdicts.append((now, json.loads(message.payload)))
            else:
                result_id, connector = message.topic.rsplit("/", 2)[-2:]
                self.heatmaps.add((result_id, connector))
            self._cond.notify_all()

    def wait_for(self, count: int, timeout: float) -> bool:
        """Wait until `count` verdicts have arrived."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.verdicts) >= count, timeout)

    def by_part(self) -> dict[str, tuple[float, dict]]:
        with self._cond:
            return {v.get("part_id"): (t, v) for t, v in self.verdicts}

    def close(self) -> None:
        self._client.loop_stop()
        self._client.disconnect()


def die_with_parent() -> None:
    """In the child: get SIGTERM when the driving process dies, so no agent is left behind.

    The kernel sends it when the *thread* that started the child ends, so a child started from a
    helper thread gets it when that thread returns (the agent stops cleanly on it).
    """
    pr_set_pdeathsig = 1
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def drop_board(board: Path, folder: Path, name: str | None = None) -> float:
    """Write a board into a drop folder as a camera does (temp name, then rename)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / (name or board.name)
    with replacing(target) as tmp:
        shutil.copyfile(board, tmp)
    return time.perf_counter()
