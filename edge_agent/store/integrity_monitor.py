"""The journal's scheduled `integrity_check`, on a low-priority thread of its own.

The check reads every page of the file through its own read-only connection (a WAL reader
never blocks the agent's writes), so it stays off the inspection path. Each outcome is handed
to `report` (None: intact; otherwise one line naming the damage and the remedy).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import structlog

from edge_agent.store.integrity import describe_damage, journal_problems

log = structlog.get_logger()

NICENESS = 19
STOP_WAIT_S = 5.0
"""How long `stop` waits for a check in progress (a large file's check takes minutes; the
thread is a daemon and reads through a read-only connection of its own)."""


class IntegrityMonitor:
    """Runs `integrity_check` every `interval_s` (the first after one interval)."""

    def __init__(
        self, journal_path: Path, interval_s: float, report: Callable[[str | None], None]
    ) -> None:
        self.journal_path = Path(journal_path)
        self.interval_s = interval_s
        self._report = report
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="journal-integrity", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop; a check in progress is waited for STOP_WAIT_S at most, and not reported."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(STOP_WAIT_S)
            self._thread = None

    def check_soon(self) -> None:
        """Run the next check now rather than at the end of the interval."""
        self._wake.set()

    def check_now(self) -> str | None:
        """One check; its outcome is reported and returned."""
        problems = journal_problems(self.journal_path)
        damage = describe_damage(self.journal_path, problems) if problems else None
        if not self._stop.is_set():
            self._report(damage)
        return damage

    def _run(self) -> None:
        try:  # Linux: a thread's id is a process id for the scheduler
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), NICENESS)
        except OSError as exc:
            log.debug("integrity check keeps normal priority", error=str(exc))
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                return
            try:
                self.check_now()
            except Exception:
                log.exception("journal integrity check failed to run")
