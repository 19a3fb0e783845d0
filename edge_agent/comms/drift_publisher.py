"""The drift monitor on the line: fed each journaled verdict, its state rows and history kept in
the journal, each state change queued in the outbox as a retained `<prefix>/drift/<subject>`
message (schema `inspect.drift/1`) and set on the `edge_inspect_drift_state` gauge.

Its own thread, at a lower priority: a board's verdict is queued for the monitor and the
inspection workers go on (the monitor's cost never delays a verdict nor takes CPU inspection
needs); boards are applied in journal order, model changes in order with them, in batches: the
thread wakes at most every `BATCH_WAIT_S` and takes what has queued up meanwhile (one wake-up
and warm caches for several boards; a state change is then seen within about a second).

Persistence: a subject's state row (its statistics in `detail`) is written at each state
change and with every `STATE_ROW_EVERY`th history row (a history row every
`drift.history_every` boards). A batch's state changes are committed together after its last
board, with their messages, and only then published (one transaction, and one status message,
for a defect burst that moves several connectors at once); a batch without a change has its
rows ride in the next board's inspection transaction (no commit of its own). A restart takes up
the last written statistics: at most `STATE_ROW_EVERY` x `history_every` + 1 boards of
evidence, and the boards still queued or in the batch at hand, are lost to a SIGKILL; a state
change that was published never is.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

import structlog

from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.config import StationConfig
from edge_agent.drift.connector_watch import ModelReference
from edge_agent.drift.monitor import Change, DriftMonitor
from edge_agent.inspect.capture import reference_measures
from edge_agent.inspect.imaging import read_image_file
from edge_agent.inspect.scoring import ModelRegistry
from edge_agent.ops.telemetry import Telemetry
from edge_agent.store.journal import DRIFT_COLUMNS, Journal, OutboxMessage, compact_json

SCHEMA = "inspect.drift/1"
QUEUE_LIMIT = 10_000
"""Boards waiting for the monitor at most; past it a board is left out of the statistics
(counted and logged) rather than holding up inspection."""
STOP_WAIT_S = 10.0
NICENESS = 10
"""The monitor's thread takes only the CPU that inspection leaves: at the line's pace it needs
a fraction of a millisecond per board, and its queue absorbs a burst."""
BATCH_WAIT_S = 1.0
"""The monitor's thread rests this long after each batch of queued steps."""
PAYLOAD_KEYS = tuple(column for column in DRIFT_COLUMNS if column != "detail")
Step = Callable[[DriftMonitor], list[Change]]
"""One board (or a model install) applied to the monitor: the changes it made."""

log = structlog.get_logger()


class DriftPublisher:
    """Owns the monitor; safe to feed from every worker thread (boards are serialised)."""

    def __init__(
        self,
        config: StationConfig,
        journal: Journal,
        registry: ModelRegistry,
        telemetry: Telemetry,
        changed: Callable[[], None],
    ) -> None:
        """`changed` is called (outside any lock) after a state changed."""
        self.config = config
        self.settings = config.drift
        self.journal = journal
        self.registry = registry
        self.telemetry = telemetry
        self.changed = changed
        self.monitor: DriftMonitor | None = None
        self.skipped = 0  # boards left out because the queue was full
        self._lock = threading.Lock()
        self._queue: queue.Queue[Step | None] = queue.Queue(QUEUE_LIMIT)
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    def _reference_of(self, connector: str) -> ModelReference | None:
        model = self.registry.get(connector)
        return ModelReference.of(model.manifest) if model is not None else None

    def start(self) -> dict[str, str]:
        """Take up the last run's states (models loaded), publish each subject's state once;
        subject -> state (what the agent's "ready" line says)."""
        if not self.settings.enabled:
            return {}
        path = self.config.station.reference_image
        sha = hashlib.sha256(path.read_bytes()).hexdigest()
        image = reference_measures(read_image_file(path), self.config.registration.working_width)
        saved = self.journal.drift_states()
        with self._lock:
            self.monitor = DriftMonitor(
                self.settings,
                self._reference_of,
                (sha, image),
                self.config.enabled_connectors(),
                saved,
            )
            rows = self.monitor.rows()
            # Subjects of the last run not watched now (a connector removed, disabled or left
            # without a model): their rows go and their retained messages are cleared.
            gone = sorted(set(saved) - {row["subject"] for row in rows})
            cleared = [OutboxMessage(self._topic(s), b"", qos=1, retain=True) for s in gone]
            messages = [self._message(row) for row in rows] + cleared
            self.journal.record_drift(rows, [], messages, forget=gone)
        if gone:
            log.info("drift_subjects_dropped", subjects=gone, retained="cleared")
        for row in rows:
            self.telemetry.set_drift(row["subject"], row["state"])
        self._stopping.clear()
        self._thread = threading.Thread(target=self._run, name="drift", daemon=True)
        self._thread.start()
        return {row["subject"]: row["state"] for row in rows}

    def stop(self) -> None:
        """Apply what is queued, then write the rows still waiting for a board (a clean stop
        loses no statistics)."""
        if self.monitor is None:
            return
        if self._thread is not None:
            self._queue.put(None)
            self._stopping.set()
            self._thread.join(STOP_WAIT_S)
        try:
            self.journal.record_drift([], [], [])
        except Exception:
            log.exception("drift_not_recorded")

    def summaries(self) -> dict[str, dict[str, Any]]:
        """subject -> {state, reason, since, measure, statistic} (the /readyz `drift` key)."""
        with self._lock:
            return self.monitor.summaries() if self.monitor is not None else {}

    def board(self, verdict: dict[str, Any], capture: dict[str, float] | None) -> None:
        """Queue one journaled verdict for the monitor. Never raises or waits: the board's
        verdict is already recorded."""
        self._submit(lambda monitor: monitor.board(verdict, capture))

    def board_now(self, verdict: dict[str, Any], capture: dict[str, float] | None) -> None:
        """Apply one journaled verdict on the calling thread (what the monitor's thread does
        with each queued board)."""
        self.apply([lambda monitor: monitor.board(verdict, capture)])

    def models(self, versions: dict[str, str]) -> None:
        """Follow the installed model versions: a new one resets its connector's state."""
        self._submit(lambda monitor: monitor.models(versions))

    def _submit(self, step: Step) -> None:
        if self.monitor is None:  # before `start`, or drift.enabled = false
            return
        try:
            self._queue.put_nowait(step)
        except queue.Full:
            self.skipped += 1
            if self.skipped == 1 or self.skipped % 1000 == 0:
                log.warning("drift_monitor_behind", skipped_boards=self.skipped)

    def _run(self) -> None:
        """The monitor's thread, at `NICENESS`: the queued steps in order, a batch per wake-up;
        each step timed as the `drift` stage (wall clock, waits for the CPU included), the
        batch's changes written in one transaction after its last step, the thread's CPU time
        counted."""
        try:  # Linux: a thread's id is a process id for the scheduler
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        except OSError as exc:
            log.debug("drift monitor keeps normal priority", error=str(exc))
        while True:
            cpu_started = time.thread_time()
            steps = [self._queue.get()]
            while steps[-1] is not None:
                try:
                    steps.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            self.apply([step for step in steps if step is not None])
            self.telemetry.add_drift_cpu("monitor", time.thread_time() - cpu_started)
            if steps[-1] is None:
                return
            self._stopping.wait(BATCH_WAIT_S)

    def apply(self, steps: list[Step]) -> None:
        """Apply `steps` in order on the calling thread, each timed as the `drift` stage; their
        changes are written in one transaction after the last, then published. The monitor is
        held throughout: nothing (`/readyz` included) sees a change before it is written."""
        monitor = self.monitor
        if monitor is None:
            return
        changes: list[Change] = []
        with self._lock:
            for step in steps:
                started = time.perf_counter()
                try:
                    changes += step(monitor)
                except Exception:
                    log.exception("drift_not_recorded")
                self.telemetry.observe_stage("drift", time.perf_counter() - started)
            if not changes:
                return
            try:
                self._record(changes)
            except Exception:
                log.exception("drift_not_recorded")
                return
        changed = [c.row for c in changes if c.changed]
        for row in changed:
            self.telemetry.set_drift(row["subject"], row["state"])
            log.info(
                "drift_state", subject=row["subject"], state=row["state"], reason=row["reason"]
            )
        if changed:
            self.changed()

    def _record(self, changes: list[Change]) -> None:
        now = utc_now()
        history = [
            {
                "at": now,
                "subject": c.row["subject"],
                "measure": c.row["measure"],
                "statistic": c.row["statistic"],
                "state": c.row["state"],
            }
            for c in changes
            if c.history
        ]
        rows = [c.row for c in changes if c.state_row]
        if any(c.changed for c in changes):  # committed now: a SIGKILL never loses a change
            messages = [self._message(c.row) for c in changes if c.changed]
            self.journal.record_drift(rows, history, messages)
        else:  # with the next board's inspection: no commit (fsync) of their own
            self.journal.defer_drift(rows, history)

    def _message(self, row: dict[str, Any]) -> OutboxMessage:
        payload = {
            "schema": SCHEMA,
            "station": self.config.station.name,
            **{key: row[key] for key in PAYLOAD_KEYS},
            "at": utc_now(),
        }
        return OutboxMessage(
            self._topic(row["subject"]), compact_json(payload), qos=1, retain=True, is_json=True
        )

    def _topic(self, subject: str) -> str:
        return f"{self.config.mqtt.prefix}/drift/{subject}"
