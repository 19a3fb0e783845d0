"""systemd's notify protocol (READY, STATUS, STOPPING, WATCHDOG) over $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)


def notify(message: str) -> bool:
    """Send one notify message; False when not run by systemd or when the send fails."""
    address = os.environ.get("NOTIFY_SOCKET", "")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]
    elif not address.startswith("/"):
        log.warning("notify_socket_unsupported", address=address)
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode())
    except OSError as exc:
        log.warning("notify_failed", address=address, error=str(exc))
        return False
    return True


def ready(status: str | None = None) -> bool:
    """Tell systemd start-up is complete (models loaded, inputs up)."""
    return notify("READY=1" + (f"\nSTATUS={status}" if status else ""))


def stopping(status: str | None = None) -> bool:
    """Tell systemd a clean shutdown has begun."""
    return notify("STOPPING=1" + (f"\nSTATUS={status}" if status else ""))


def status(text: str) -> bool:
    """Set the one-line status `systemctl status` shows."""
    return notify(f"STATUS={text}")


# `timeout_s` comes from $WATCHDOG_USEC (None: no watchdog for this process). The main
# loop calls `tick()` at least every `tick_interval_s`; the pipeline calls `progress()` for
# each board journaled and on each idle pass that finds the queue empty and the workers
# alive, at least as often. A pet needs progress since the previous one and comes at most
# once per `tick_interval_s`, so a stalled pipeline stops the pets and systemd restarts it.
class Watchdog:
    """Pets the systemd watchdog on `tick()` only after `progress()` since the last pet."""

    def __init__(
        self, timeout_s: float | None = None, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.timeout_s = _watchdog_timeout() if timeout_s is None else timeout_s
        self._clock = clock
        self._progress = False
        self._last_pet: float | None = None

    @property
    def enabled(self) -> bool:
        """True when systemd expects watchdog pets from this process."""
        return self.tick_interval_s is not None

    @property
    def tick_interval_s(self) -> float | None:
        """How often the main loop should call `tick()` (a quarter of the timeout)."""
        timeout = self.timeout_s
        return timeout / 4 if timeout is not None and timeout > 0 else None

    def progress(self) -> None:
        """Record that the pipeline moved forward."""
        self._progress = True

    def tick(self) -> bool:
        """Send WATCHDOG=1 when progress was reported since the last pet; True if sent."""
        interval = self.tick_interval_s
        if interval is None or not self._progress:
            return False
        now = self._clock()
        if self._last_pet is not None and now - self._last_pet < interval:
            return False
        self._progress = False
        self._last_pet = now
        return notify("WATCHDOG=1")


def _watchdog_timeout() -> float | None:
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    return int(usec) / 1_000_000
