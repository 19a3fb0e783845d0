"""SIGTERM and SIGINT as a stop request, acted on by a thread of its own.

A Python signal handler runs on the main thread between two bytecodes: possibly while that thread
holds a lock (inside `threading.Event.wait`, say), or inside the previous handler when two signals
arrive together (systemd's stop and a parent's death signal, a double Ctrl-C). A handler that takes
a lock, as `threading.Event.set` does, can then deadlock the process, and the service only ends
when systemd kills it. Here the handler does nothing: the interpreter writes each signal's number
to a socket (`signal.set_wakeup_fd`), and a thread reads it and calls `on_stop` once.
"""

from __future__ import annotations

import signal
import socket
import threading
from collections.abc import Callable

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signal(on_stop: Callable[[int], None]) -> threading.Thread:
    """Call `on_stop(signum)` once, from a thread, at the first SIGTERM or SIGINT; later ones are
    ignored. Call from the main thread, once per process."""
    receive, send = socket.socketpair()
    send.setblocking(False)
    signal.set_wakeup_fd(send.fileno(), warn_on_full_buffer=False)
    for signum in STOP_SIGNALS:
        signal.signal(signum, _no_op)
    thread = threading.Thread(
        target=_listen, args=(receive, send, on_stop), name="stop-signals", daemon=True
    )
    thread.start()
    return thread


def _no_op(signum: int, frame: object) -> None:
    """A Python-level handler, so the signal is delivered to the wakeup socket; no work here."""


def _listen(receive: socket.socket, send: socket.socket, on_stop: Callable[[int], None]) -> None:
    """Wait for a stop signal's number on the socket (`send` is kept open by this frame)."""
    wanted = {int(signum) for signum in STOP_SIGNALS}
    while True:
        for number in receive.recv(64):
            if number in wanted:
                on_stop(number)
                return
