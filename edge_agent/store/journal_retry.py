"""Boards that failed to journal, retried oldest first with back-off until they are journaled.

A board lands here when its journal write failed (disk full, I/O error). Its input file stays
where it arrived, so nothing acknowledged is lost, and it gets its verdict once the journal
works again, without a restart. Arrival order holds: while any board waits here, the workers
wait too (`wait_turn`), so no later board is journaled before it. Each attempt re-runs the
whole board; a failed attempt leaves nothing in the journal (its transaction rolled back) and
one that failed after its commit is found by its source path, so a board gets one row.

A board that makes no progress for `give_up_after_s` is handed to `give_up`, which gives it an
ERROR verdict (True) or answers False to keep waiting (the journal takes no write at all: a
full disk waits for space, it does not become a restart loop). When giving up fails too, the
board stays first in line and `stuck` names it with the reason: the agent then stops pinging
the systemd watchdog, so systemd restarts it, and readiness says which input and why.
"""

from __future__ import annotations

import bisect
import math
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

import structlog

from edge_agent.contracts.clock import utc_now
from edge_agent.inputs.names import name_text

log = structlog.get_logger()

Item = TypeVar("Item")
FIRST_DELAY_S = 1.0


class JournalRetry(Generic[Item]):
    """The stalled boards (by arrival number) and the thread that retries the oldest."""

    def __init__(
        self,
        attempt: Callable[[Item], None],
        *,
        max_delay_s: float,
        backlog: Callable[[int], None] = lambda n: None,
        give_up_after_s: float = math.inf,
        give_up: Callable[[Item, Exception], bool] = lambda item, exc: False,
        describe: Callable[[Item], str] = str,
    ) -> None:
        """`give_up(item, last_error)`: True once the item has its ERROR verdict, False to keep
        waiting; `describe(item)`: how log lines and `stuck` name an item."""
        self._attempt = attempt
        self._give_up_after_s = give_up_after_s
        self._give_up = give_up
        self._describe = describe
        self._stuck: dict[str, str] | None = None
        self._waiting: dict[str, str] | None = None
        self._first_delay_s = min(FIRST_DELAY_S, max_delay_s)
        self._max_delay_s = max_delay_s
        self._backlog = backlog
        self._stalled: list[tuple[int, Item]] = []
        self._changed = threading.Condition()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="journal-retry", daemon=True)

    def __len__(self) -> int:
        with self._changed:
            return len(self._stalled)

    @property
    def stuck(self) -> dict[str, str] | None:
        """The first board in line when even giving it up failed: its name and the reason."""
        with self._changed:
            return self._stuck

    @property
    def waiting(self) -> dict[str, str] | None:
        """The first board in line while its retries fail: its name, the last error, since when."""
        with self._changed:
            return self._waiting

    def is_alive(self) -> bool:
        """Whether the retry thread runs."""
        return self._thread.is_alive()

    def start(self) -> None:
        """Start the retry thread."""
        self._thread.start()

    def stop(self) -> int:
        """Stop retrying and release waiting workers; how many boards were left (their files
        stay where they arrived, for the next start)."""
        with self._changed:
            self._stopping.set()
            left = len(self._stalled)
            self._changed.notify_all()
        if self._thread.is_alive():
            self._thread.join()
        if left:
            log.warning("journal_retry_stopped", boards_left=left)
        return left

    def stall(self, arrival: int, item: Item) -> None:
        """Keep a board whose journal write failed, in arrival order, for the retry thread."""
        with self._changed:
            bisect.insort(self._stalled, (arrival, item), key=lambda entry: entry[0])
            self._backlog(len(self._stalled))
            self._changed.notify_all()

    def wait_turn(self) -> bool:
        """Block while boards wait for a retry (nothing overtakes them); False when stopping
        with boards still waiting (a later board then stays put too, for the next start)."""
        with self._changed:
            self._changed.wait_for(lambda: not self._stalled or self._stopping.is_set())
            return not self._stalled

    def _run(self) -> None:
        delay = self._first_delay_s
        head: tuple[int, float, str] | None = None  # the first board's arrival, since when
        while True:
            with self._changed:
                self._changed.wait_for(lambda: self._stalled or self._stopping.is_set())
            if self._stopping.wait(delay):
                return
            with self._changed:
                arrival, item = self._stalled[0]
            first_try = head is None or head[0] != arrival
            if first_try:
                head = (arrival, time.monotonic(), utc_now())
            try:
                self._attempt(item)
            except Exception as exc:  # still failing: the board stays first in line
                waited, error = time.monotonic() - head[1], name_text(str(exc))
                waiting = {"input": self._describe(item), "error": error, "since": head[2]}
                with self._changed:
                    self._waiting = waiting
                if first_try:
                    log.warning("journal retry failed: the input waits first in line",
                                input=self._describe(item), error=error)  # fmt: skip
                if waited < self._give_up_after_s or not self._gave_up(item, exc, waited):
                    delay = min(delay * 2, self._max_delay_s)
                    continue
            with self._changed:
                self._stalled.pop(0)
                self._stuck = self._waiting = None
                self._backlog(len(self._stalled))
                delay = 0.0 if self._stalled else self._first_delay_s
                self._changed.notify_all()

    def _gave_up(self, item: Item, error: Exception, waited: float) -> bool:
        """Whether `give_up` resolved the board; when it failed, the board is `stuck`."""
        try:
            return self._give_up(item, error)
        except Exception as exc:
            reason = name_text(f"no progress for {waited:.0f} s, and giving it up failed: {exc}")
            with self._changed:
                first = self._stuck is None
                self._stuck = {"input": self._describe(item), "reason": reason}
            if first:
                log.error("input stuck: restart needed", input=self._describe(item),
                          reason=reason, exc_info=exc)  # fmt: skip
            return False
