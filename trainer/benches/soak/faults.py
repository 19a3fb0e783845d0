"""The soak's faults: a broker outage and SIGKILLs of the agent on a schedule, and a
supervisor that restarts the agent after any exit, as systemd does (`Restart=always`)."""

from __future__ import annotations

import signal
import threading
import time
from dataclasses import dataclass

from trainer.benches.soak.stream import ImagePublisher
from trainer.harness.local_broker import LocalBroker
from trainer.harness.station_run import AgentProcess

RESTART_DELAY_S = 2.0
"""The agent unit's `RestartSec`."""
SETTLE_TIMEOUT_S = 10.0
READY_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class Fault:
    """`kind` "kill" (SIGKILL the agent) or "outage" (broker down `seconds`), at `at_s`."""

    kind: str
    at_s: float
    seconds: float = 0.0


def schedule(duration_s: float, kills: int, outage_s: float) -> list[Fault]:
    """Kills and one outage in evenly spaced slots of the run, the outage in the middle slot.

    The slots divide the time outside the outage, so no kill falls inside it.
    """
    outage_s = min(max(outage_s, 0.0), duration_s / 2)
    slots = kills + (1 if outage_s else 0)
    free = duration_s - outage_s
    outage_slot = kills // 2 if outage_s else -1
    faults, shift = [], 0.0
    for slot in range(slots):
        at = free * (slot + 0.5) / slots + shift
        if slot == outage_slot:
            faults.append(Fault("outage", at, outage_s))
            shift = outage_s
        else:
            faults.append(Fault("kill", at))
    return faults


@dataclass(frozen=True)
class Event:
    """Something that happened to the agent or the broker, `at_s` into the stream."""

    at_s: float
    what: str
    detail: str = ""


class Timeline:
    """Events in order, timed from the start of the stream."""

    def __init__(self) -> None:
        self.started_at = time.perf_counter()
        self._events: list[Event] = []
        self._lock = threading.Lock()

    def now(self) -> float:
        return time.perf_counter() - self.started_at

    def add(self, what: str, detail: str = "") -> None:
        with self._lock:
            self._events.append(Event(round(self.now(), 2), what, detail))

    def events(self) -> list[Event]:
        with self._lock:
            return list(self._events)


class Supervisor(threading.Thread):
    """Restarts the agent `RESTART_DELAY_S` after it exits, for whatever reason, until stopped."""

    def __init__(self, agent: AgentProcess, timeline: Timeline) -> None:
        super().__init__(name="soak-supervisor", daemon=True)
        self.agent = agent
        self.timeline = timeline
        self.up = threading.Event()
        self.up.set()
        self.unexpected_exits = 0
        self._killing = False
        self._lock = threading.Lock()
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(0.1):
            with self._lock:
                assert self.agent.process is not None
                code = self.agent.process.poll()
                if code is None:
                    continue
                expected, self._killing = self._killing, False
            self.up.clear()
            self.unexpected_exits += not expected
            self.timeline.add("agent exited", f"code {code}" + ("" if expected else ", unexpected"))
            if self._stop_event.wait(RESTART_DELAY_S):
                return
            self._restart()

    def _restart(self) -> None:
        with self._lock:
            self.agent.start()
        try:
            self.agent.wait_ready(READY_TIMEOUT_S)
        except RuntimeError as exc:
            self.timeline.add("agent start failed", str(exc))
            return
        self.timeline.add("agent ready")
        self.up.set()

    def kill(self) -> None:
        """SIGKILL the agent (once it is up); the supervisor restarts it."""
        self.up.wait(READY_TIMEOUT_S)
        with self._lock:
            self._killing = True
            self.agent.kill(signal.SIGKILL)
        self.timeline.add("agent killed", "SIGKILL")

    def stop(self) -> None:
        """Stop supervising, then stop the agent cleanly (SIGTERM)."""
        self._stop_event.set()
        self.join()
        self.agent.stop()


class FaultRunner(threading.Thread):
    """Applies the faults at their times (seconds after the timeline's start)."""

    def __init__(
        self,
        faults: list[Fault],
        timeline: Timeline,
        supervisor: Supervisor,
        broker: LocalBroker,
        publisher: ImagePublisher,
    ) -> None:
        super().__init__(name="soak-faults", daemon=True)
        self.faults = faults
        self.timeline = timeline
        self.supervisor = supervisor
        self.broker = broker
        self.publisher = publisher
        self.broker_up = True
        self._stop_event = threading.Event()

    def run(self) -> None:
        for fault in self.faults:
            if self._stop_event.wait(max(0.0, fault.at_s - self.timeline.now())):
                return
            if fault.kind == "kill":
                self.supervisor.kill()
            else:
                self._outage(fault.seconds)

    def _outage(self, seconds: float) -> None:
        """Stop the broker cleanly (it saves its sessions and queued messages), start it again."""
        with self.publisher.lock:
            settled = self.publisher.settle(SETTLE_TIMEOUT_S)
            self.broker.stop()
        self.broker_up = False
        self.timeline.add("broker stopped", "" if settled else "with camera images in flight")
        self._stop_event.wait(seconds)
        self.broker.start()
        self.broker_up = True
        self.timeline.add("broker started")

    def stop(self) -> None:
        self._stop_event.set()
        self.join()
        if not self.broker_up:
            self.broker.start()
            self.broker_up = True
