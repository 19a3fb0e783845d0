"""Readiness as a list of reasons: each says in plain words what stops the station and the remedy.

A station is ready when no check gives a reason. Checks are plain callables, so a part of the
agent adds its own reasons by adding a check; codes are stable (metrics, tests and the console
key on them), the words may change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass

import structlog

from edge_agent.ops.telemetry import Telemetry

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Reason:
    """Why the station is not ready: a stable code, what is wrong, and what to do about it."""

    code: str
    reason: str
    remedy: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


Check = Callable[[], Iterable[Reason]]


def assess(checks: Iterable[Check]) -> list[Reason]:
    """Every reason the checks give, in check order; a failing check is a reason of its own."""
    reasons: list[Reason] = []
    for check in checks:
        try:
            reasons.extend(check())
        except Exception as exc:
            log.exception("readiness_check_failed")
            reasons.append(
                Reason(
                    "check_failed",
                    f"a readiness check failed: {type(exc).__name__}: {exc}",
                    "see the agent's log; restart the agent if it persists",
                )
            )
    return reasons


class ReadinessWatch:
    """Follows the reasons over time: logs each once when it appears and once when it clears,
    and keeps the `ready` and `not_ready_reason{code}` gauges current.

    Reason texts are meant to stay the same while the cause does (a "since" time, never a
    running duration), so that a reason is logged once per change, not on every pass.
    """

    def __init__(self, telemetry: Telemetry) -> None:
        self._telemetry = telemetry
        self._current: tuple[Reason, ...] | None = None  # not assessed yet: `ready` stays 0
        self._lock = threading.Lock()  # the main loop and the health endpoint both follow

    def follow(self, reasons: list[Reason]) -> bool:
        """Record the reasons of now; True when they differ from the last ones."""
        with self._lock:
            return self._follow(reasons)

    def _follow(self, reasons: list[Reason]) -> bool:
        now, before = tuple(dict.fromkeys(reasons)), self._current or ()
        if self._current is not None and set(now) == set(before):
            return False
        for reason in now:
            if reason not in before:
                log.error("not_ready", code=reason.code, reason=reason.reason, remedy=reason.remedy)
        for reason in before:
            if reason not in now:
                log.info("not_ready_cleared", code=reason.code, reason=reason.reason)
        if before and not now:
            log.info("ready_again")
        self._current = now
        self._telemetry.set_readiness([reason.code for reason in now])
        return True
