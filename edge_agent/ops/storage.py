"""Storage health: whether the journal can be written and how much room the state filesystem has.

Workers report each journal write's outcome; readiness, the retained `status` message and the
metrics read the state from here. A change of state is logged once (failing at ERROR, the
recovery at INFO), never once per board or per retry.
"""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path
from typing import Any

import structlog

from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.config import MB, StorageSettings
from edge_agent.ops.telemetry import Telemetry

log = structlog.get_logger()


def free_bytes(path: Path) -> int:
    """Bytes available to this process on the filesystem holding `path`."""
    return shutil.disk_usage(path).free


class StorageHealth:
    """The journal's state (ok / failing since when, with the last error) and free space."""

    def __init__(self, state_dir: Path, settings: StorageSettings, telemetry: Telemetry) -> None:
        self.state_dir = Path(state_dir)
        self.min_free_bytes = int(settings.min_free_mb * MB)
        self.crops_min_free_bytes = int(settings.crops_min_free_mb * MB)
        self._telemetry = telemetry
        self._lock = threading.Lock()
        self._error: str | None = None
        self._since: str | None = None
        self._failing_since_s = 0.0
        self._failures = 0
        self._below_floor = False
        self._damage: str | None = None
        telemetry.set_journal_ok(True)
        telemetry.set_journal_intact(True)

    def journal_checked(self, damage: str | None) -> None:
        """The outcome of an integrity check (None: intact); damage is logged once, at ERROR."""
        with self._lock:
            changed = (damage is None) != (self._damage is None)  # not when the wording changes
            self._damage = damage
        self._telemetry.set_journal_intact(damage is None)
        if changed and damage:
            log.error("journal_damaged", error=damage)
        elif changed:
            log.info("journal_intact")

    def journal_failed(self, error: BaseException) -> None:
        """Count a failed journal write; the first of a run is logged at ERROR."""
        self._telemetry.journal_error()
        text = f"{type(error).__name__}: {error}"
        with self._lock:
            first = self._error is None
            self._error = text
            self._failures += 1
            if first:
                self._since = utc_now()
                self._failing_since_s = time.monotonic()
        if first:
            self._telemetry.set_journal_ok(False)
            log.error("journal_failing", error=text, free_bytes=self.free_bytes(), exc_info=error)

    def journal_worked(self) -> None:
        """A journal write succeeded; after failures, the recovery is logged once at INFO."""
        with self._lock:
            if self._error is None:
                return
            failures, seconds = self._failures, time.monotonic() - self._failing_since_s
            self._error = self._since = None
            self._failures = 0
        self._telemetry.set_journal_ok(True)
        log.info("journal_recovered", failed_writes=failures, after_s=round(seconds, 1))

    def free_bytes(self) -> int:
        """Free bytes of the state filesystem now (0 when it cannot be read), also as a gauge."""
        try:
            free = free_bytes(self.state_dir)
        except OSError:
            free = 0
        self._telemetry.set_state_free_bytes(free)
        below = free < self.min_free_bytes
        with self._lock:
            changed, self._below_floor = below != self._below_floor, below
        if changed and below:
            log.error("state_disk_below_floor", free_bytes=free, floor=self.min_free_bytes)
        elif changed:
            log.info("state_disk_above_floor", free_bytes=free, floor=self.min_free_bytes)
        return free

    def report(self) -> dict[str, Any]:
        """The state for readiness and the `status` message; "ok" is False when not ready."""
        free = self.free_bytes()
        with self._lock:
            error, since, failures = self._error, self._since, self._failures
            damage = self._damage
        return {
            "ok": error is None and damage is None and free >= self.min_free_bytes,
            "journal": "damaged" if damage else "ok" if error is None else "failing",
            "journal_error": damage or error,
            "failing_since": since,
            "failed_writes": failures,
            "free_bytes": free,
            "min_free_bytes": self.min_free_bytes,
            "crops_min_free_bytes": self.crops_min_free_bytes,
        }
