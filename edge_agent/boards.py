"""One board through the stages: dedup, inspect, journal (verdict + outbox in one transaction),
the drift monitor, crops and shadow scoring, filing, metrics and the watchdog; a storage
failure goes back to the worker (retried in arrival order), any other fault becomes the input's
ERROR verdict."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import structlog

from edge_agent.comms.drift_publisher import DriftPublisher
from edge_agent.contracts.config import StationConfig
from edge_agent.feedback.feedback_loop import FeedbackLoop
from edge_agent.inputs.drop_folder import DropFile
from edge_agent.inputs.filing import DISK_FULL, file_or_leave
from edge_agent.inputs.names import name_text
from edge_agent.inputs.spool import describe
from edge_agent.inspect.pipeline import Inspector
from edge_agent.ops import sdnotify
from edge_agent.ops.stats import BoardStats
from edge_agent.ops.storage import StorageHealth
from edge_agent.ops.telemetry import Telemetry
from edge_agent.store.dedup import file_if_seen
from edge_agent.store.integrity_monitor import IntegrityMonitor
from edge_agent.store.journal import Journal, JournalError, OutboxMessage

log = structlog.get_logger()

# What a journal or disk failure raises: the board waits for a retry, in arrival order.
STORAGE_ERRORS = (OSError, sqlite3.Error, JournalError)
SQLITE_FULL = 13


@dataclass(frozen=True)
class BoardWork:
    drop: DropFile
    spooled: bool
    arrival: int


def as_internal_error(work: BoardWork, exc: Exception, what: str = "internal error") -> BoardWork:
    """The same input, to be recorded as an ERROR verdict that names the fault."""
    error = name_text(f"{what} while handling the input: {type(exc).__name__}: {exc}")
    return replace(work, drop=replace(work.drop, data=b"", error=error))


def is_disk_full(exc: BaseException) -> bool:
    """A write refused for want of space: the journal takes no write at all until there is."""
    if isinstance(exc, OSError):
        return exc.errno in DISK_FULL
    return isinstance(exc, sqlite3.Error) and getattr(exc, "sqlite_errorcode", 0) == SQLITE_FULL


class BoardHandler:
    """Hands each input through the stages; the agent's worker threads call `journal`."""

    def __init__(
        self,
        config: StationConfig,
        journal: Journal,
        inspector: Inspector,
        drift: DriftPublisher,
        feedback: FeedbackLoop,
        storage: StorageHealth,
        integrity: IntegrityMonitor,
        telemetry: Telemetry,
        watchdog: sdnotify.Watchdog,
        wake_outbox: Callable[[], None],
    ) -> None:
        self.config = config
        self.journal_db = journal
        self.inspector = inspector
        self.drift = drift
        self.feedback = feedback
        self.storage = storage
        self.integrity = integrity
        self.telemetry = telemetry
        self.watchdog = watchdog
        self.wake_outbox = wake_outbox
        self.stats = BoardStats()
        # Held while a board takes its inspector and models, and while a new layout swaps them
        # (`swap_layout`): every board is inspected wholly in one geometry.
        self.layout_lock = threading.Lock()

    def swap_layout(
        self, config: StationConfig, inspector: Inspector, swap: Callable[[], None]
    ) -> None:
        """Between two boards: `swap` (the registry's models), then the config and inspector."""
        with self.layout_lock:
            swap()
            self.config, self.inspector = config, inspector

    def give_up(self, work: BoardWork, error: Exception) -> bool:
        """An input retried without progress for `storage.give_up_after_s`: its ERROR verdict
        (True), or False while the disk is full (waiting for space, not a restart loop)."""
        if is_disk_full(error) or self.storage.free_bytes() < self.storage.min_free_bytes:
            return False
        after_s = self.config.storage.give_up_after_s
        log.error(
            "input given up after retries without progress: it gets an ERROR verdict",
            input=name_text(work.drop.path),
            after_s=after_s,
            error=name_text(str(error)),
        )
        try:
            self.journal(as_internal_error(work, error, f"no progress for {after_s:.0f} s"))
        except Exception as exc:
            if is_disk_full(exc):
                return False
            raise
        return True

    def journal_or_stall(self, work: BoardWork, stall: Callable[[int, BoardWork], None]) -> None:
        """Journal `work`; if even that fails, `stall` it for a retry in arrival order."""
        try:
            self.journal(work)
        except Exception:
            stall(work.arrival, work)

    def journal(self, work: BoardWork) -> None:
        """Handle one board, telling storage health whether its journal write went through."""
        try:
            self.handle(work)
        except STORAGE_ERRORS as exc:
            self.storage.journal_failed(exc)
            if type(exc) is sqlite3.DatabaseError:  # "malformed": the file, not the disk
                self.integrity.check_soon()
            raise
        self.storage.journal_worked()

    def handle(self, work: BoardWork) -> None:
        """Inspect one input, journal the verdict, then (only then) move the file."""
        drop = work.drop
        if file_if_seen(self.journal_db, drop):
            return
        started = time.perf_counter()
        part_id, uri, captured_at = describe(drop, work.spooled, self.config.mqtt.prefix)
        source = {
            "camera": drop.camera,
            "source_uri": uri,
            "source_sha256": drop.sha256,
            "part_id": part_id,
            "captured_at": captured_at,
        }
        with self.layout_lock:
            inspector = self.inspector
            models = inspector.models()
        if drop.error is not None:
            result = inspector.refuse(drop.error or "unreadable input", **source)
        else:
            result = inspector.inspect(drop.data, models=models, **source)
        verdict, heatmaps, error = result.verdict, result.heatmaps, result.error
        verdict["historical"] = False
        prefix = self.config.mqtt.prefix
        messages = [
            OutboxMessage(f"{prefix}/heatmap/{verdict['result_id']}/{cid}", png, qos=0)
            for cid, png in heatmaps.items()
        ]
        seq = self.journal_db.record_inspection(
            verdict, messages, f"{prefix}/verdict", source_path=name_text(drop.path)
        )
        self.wake_outbox()
        self.drift.board(verdict, result.capture)
        # A repeat's crops are the first verdict's crops again: kept once, not twice.
        self.feedback.board_done(verdict, {} if verdict.get("duplicate_of") else result.crops)
        evaluation = verdict["evaluation"]
        file_or_leave(drop, "processed" if error is None else "failed", verdict["result_id"], error)
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.stats.board(elapsed_ms)
        self.telemetry.observe_board(
            evaluation,
            [(c["id"], c["evaluation"]) for c in verdict.get("connectors", [])],
            {k: v / 1000 for k, v in verdict.get("processing_ms", {}).items()},
        )
        if result.capture is not None:
            self.telemetry.observe_stage("capture", result.capture_seconds)
            self.telemetry.add_drift_cpu("capture", result.capture_cpu_seconds)
        if error is not None:
            self.telemetry.input_error(verdict.get("error", {}).get("stage", "input"))
        self.watchdog.progress()
        log.info(
            "verdict",
            result_id=verdict["result_id"],
            seq=seq,
            part_id=part_id,
            camera=drop.camera,
            evaluation=evaluation,
            duplicate_of=verdict.get("duplicate_of"),
            nok=[c["id"] for c in verdict.get("connectors", []) if c["evaluation"] == "NOK"],
            ms=round(elapsed_ms, 1),
            error=error,
        )
