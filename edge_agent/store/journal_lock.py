"""Who holds the journal: the running agent keeps an exclusive `flock` on `<journal>.lock`
for its lifetime, so `edge-inspect journal recover` (and a second agent) can refuse to touch a
journal in use. The kernel drops the lock when the process ends, a SIGKILL included."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from edge_agent.store.journal import JournalError


def lock_path(journal_path: Path) -> Path:
    return Path(journal_path).with_name(Path(journal_path).name + ".lock")


@contextmanager
def holding_journal(journal_path: Path, holder: str) -> Iterator[None]:
    """Hold the journal's lock while the block runs; a JournalError when another process has it."""
    path = lock_path(journal_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise JournalError(
                f"{journal_path} is in use by another process (an agent running on this "
                f"station?): stop it first (`systemctl stop edge-inspect`)"
            ) from None
        try:  # who holds it, for a person looking; a full disk must not stop the agent here
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()} {holder}\n".encode())
        except OSError:
            pass
        yield
    finally:
        os.close(fd)
