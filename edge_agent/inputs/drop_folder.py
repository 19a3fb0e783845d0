"""Camera drop-folder input: complete files handed over once, in arrival order."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import structlog
from watchdog.events import (
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from edge_agent.inputs.names import name_text

log = structlog.get_logger(__name__)

IGNORED_SUFFIXES = (".tmp", ".part")
PARTIAL_UPLOAD_NOTICE_S = 5.0
"""A partial upload still there this long is logged (once): a camera renames within moments."""
_CHUNK = 1 << 20
_EVENTS: list[type[FileSystemEvent]] = [
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
]


@dataclass(frozen=True)
class DropFile:
    """One complete file from a camera: read once, hashed once; `error` set means no `data`."""

    camera: str
    path: Path
    sha256: str
    data: bytes = field(repr=False)
    error: str | None = None


def is_ignored(name: str) -> bool:
    """True for names a camera uses while writing (hidden, `*.tmp`, `*.part`)."""
    return name.startswith(".") or name.lower().endswith(IGNORED_SUFFIXES)


def _partial_upload_remedy(name: str) -> str:
    """What renaming an ignored (partial upload) name takes for it to be inspected."""
    if name.startswith("."):
        return "renamed without the leading dot"
    return "renamed without its " + name[name.rfind(".") :].lower() + " suffix"


@dataclass
class _Pending:
    seq: int
    identity: tuple[int, int, int] | None = None
    stable_since: float = 0.0
    next_try: float = 0.0
    failures: int = 0
    failing_since: float | None = None  # when reading it first failed
    complete: bool = False  # a close-after-write or a rename into the folder was seen


def _identity(st: os.stat_result) -> tuple[int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class _Handler(FileSystemEventHandler):
    def __init__(self, watcher: DropFolderWatcher) -> None:
        self._watcher = watcher

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.is_directory:
            return
        if event.event_type in ("moved", "deleted"):
            self._watcher._left(event.src_path)
        if event.event_type == "moved":
            self._watcher._arrived(event.dest_path, complete=True)
        elif event.event_type == "closed":
            self._watcher._arrived(event.src_path, complete=True)
        elif event.event_type in ("created", "modified"):
            self._watcher._arrived(event.src_path)


# A file is complete once its inode, size and mtime stay unchanged for `settle_s` and it
# can be read; until then it is re-checked, never dropped, and it does not hold back
# complete files that arrived after it. Each file (path + inode, size, mtime) is handed
# over at most once per process; a new file that later takes the same name is a new file.
# A file above `max_bytes` is handed over with empty `data` and `error` set, so the agent
# records an ERROR verdict and quarantines it like any other bad input.
class DropFolderWatcher:
    """Watches one camera's folder and calls `on_file` on one thread for each complete file."""

    def __init__(
        self,
        camera: str,
        folder: Path,
        on_file: Callable[[DropFile], None],
        *,
        poll: bool = False,
        poll_interval_s: float = 1.0,
        settle_s: float = 0.2,
        max_bytes: int = 50_000_000,
        give_up_after_s: float = 300.0,
    ) -> None:
        self.camera = camera
        self.folder = Path(folder).absolute()
        self._on_file = on_file
        self._poll = poll
        self._poll_interval_s = poll_interval_s
        self._settle_s = settle_s
        self._max_bytes = max_bytes
        self._give_up_after_s = give_up_after_s
        self._check_s = min(0.1, max(0.01, settle_s / 4))
        self._cond = threading.Condition()
        self._pending: dict[Path, _Pending] = {}
        self._handed: dict[Path, tuple[int, int, int]] = {}
        # Ignored names seen: since when (monotonic), None once logged.
        self._partial_uploads: dict[str, float | None] = {}
        self._seq = 0
        self._stopping = False
        self._observer: BaseObserver | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Create the folders, queue the backlog (oldest first), then follow new arrivals."""
        if self._thread is not None:
            raise RuntimeError(f"drop folder watcher for {self.folder} already started")
        self.folder.mkdir(parents=True, exist_ok=True)
        observer = PollingObserver(timeout=self._poll_interval_s) if self._poll else Observer()
        # Not recursive: the handled files below (inputs/filing.py) are neither watched nor
        # listed by a poll. Filing unlinks the input here, so inotify sees a deletion, not a
        # move out (which would make watchdog hold every later event for its pairing delay).
        observer.schedule(_Handler(self), str(self.folder), recursive=False, event_filter=_EVENTS)
        with self._cond:
            observer.start()
            self._observer = observer
            for path in self._backlog():
                self._queue(path)
        self._thread = threading.Thread(target=self._run, name=f"drop-{self.camera}", daemon=True)
        self._thread.start()
        log.info(
            "drop_folder_started",
            camera=self.camera,
            folder=name_text(self.folder),
            backlog=len(self._pending),
            poll=self._poll,
        )

    def stop(self) -> None:
        """Stop watching; waits for a callback in progress unless called from that callback."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._observer is not None:
            self._observer.stop()
            self._observer.join()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def is_alive(self) -> bool:
        """True while the folder exists and both the observer and the dispatch thread run."""
        observer, thread = self._observer, self._thread
        return (
            observer is not None
            and thread is not None
            and not self._stopping
            and observer.is_alive()
            and all(emitter.is_alive() for emitter in observer.emitters)
            and thread.is_alive()
            and self.folder.is_dir()
        )

    def _backlog(self) -> list[Path]:
        found: list[tuple[int, str]] = []
        with os.scandir(self.folder) as entries:
            for entry in entries:
                if is_ignored(entry.name):
                    self._note_partial_upload(entry.name)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
                found.append((entry.stat(follow_symlinks=False).st_mtime_ns, entry.name))
        return [self.folder / name for _, name in sorted(found)]

    def _candidate(self, raw: str | bytes) -> Path | None:
        path = Path(os.fsdecode(raw))
        if path.parent != self.folder:
            return None
        if is_ignored(path.name):
            self._note_partial_upload(path.name)
            return None
        return path

    def _note_partial_upload(self, name: str) -> None:
        """Remember an ignored name; it is logged if it is still there a while later."""
        with self._cond:
            self._partial_uploads.setdefault(name, time.monotonic())

    def _log_lingering_partial_uploads(self) -> None:
        """Log, once each, the ignored names still there `PARTIAL_UPLOAD_NOTICE_S` after they
        came (a camera's own temporary name is renamed long before, and never logged)."""
        due = time.monotonic() - PARTIAL_UPLOAD_NOTICE_S
        with self._cond:
            seen = self._partial_uploads.items()
            lingering = [name for name, since in seen if since is not None and since < due]
        for name in lingering:
            there = os.path.lexists(self.folder / name)
            with self._cond:
                if there:
                    self._partial_uploads[name] = None
                else:
                    self._partial_uploads.pop(name, None)
            if there:
                log.info(
                    "file taken as a partial upload: it will be inspected once "
                    + _partial_upload_remedy(name),
                    camera=self.camera,
                    file=name_text(name),
                )

    def _arrived(self, raw: str | bytes, complete: bool = False) -> None:
        """Queue a file; `complete` (closed or renamed in) skips the settle wait."""
        path = self._candidate(raw)
        if path is None:
            return
        with self._cond:
            if path in self._pending:
                self._pending[path].complete |= complete
                self._cond.notify_all()
                return
            handed = self._handed.get(path)
            if handed is not None:
                try:
                    if _identity(os.lstat(path)) == handed:
                        return
                except FileNotFoundError:
                    return
                del self._handed[path]
            self._queue(path)
            self._pending[path].complete = complete
            self._cond.notify_all()

    def _left(self, raw: str | bytes) -> None:
        path = Path(os.fsdecode(raw))
        with self._cond:
            self._partial_uploads.pop(path.name, None)
            self._pending.pop(path, None)
            self._handed.pop(path, None)

    def _queue(self, path: Path) -> None:
        self._pending[path] = _Pending(seq=self._seq)
        self._seq += 1

    def _run(self) -> None:
        while True:
            with self._cond:
                if self._stopping:
                    return
                queued = sorted(self._pending.items(), key=lambda item: item[1].seq)
            drop = self._first_ready(queued)
            if drop is not None:
                self._dispatch(drop)
                continue
            self._log_lingering_partial_uploads()
            with self._cond:
                if not self._stopping:
                    self._cond.wait(self._check_s)

    def _first_ready(self, queued: list[tuple[Path, _Pending]]) -> DropFile | None:
        now = time.monotonic()
        for path, entry in queued:
            if self._stopping:
                return None
            if now < entry.next_try:
                continue
            try:
                st = os.lstat(path)
            except FileNotFoundError:
                self._forget(path, entry)
                continue
            except OSError as exc:
                if (drop := self._retry_later(path, entry, now, exc)) is not None:
                    return drop
                continue
            if not stat.S_ISREG(st.st_mode):
                log.warning("drop_not_a_file", camera=self.camera, file=name_text(path))
                self._forget(path, entry)
                continue
            identity = _identity(st)
            if identity != entry.identity and not entry.complete:
                entry.identity = identity
                entry.stable_since = now
                continue
            if not entry.complete and now - entry.stable_since < self._settle_s:
                continue
            try:
                drop = self._read(path, identity)
            except FileNotFoundError:
                self._forget(path, entry)
                continue
            except OSError as exc:
                if (drop := self._retry_later(path, entry, now, exc)) is not None:
                    return drop
                continue
            if drop is None:
                entry.identity = None
                continue
            with self._cond:
                if self._pending.get(path) is not entry:
                    continue
                del self._pending[path]
                self._handed[path] = identity
            return drop
        return None

    def _forget(self, path: Path, entry: _Pending) -> None:
        with self._cond:
            if self._pending.get(path) is entry:
                del self._pending[path]

    def _retry_later(
        self, path: Path, entry: _Pending, now: float, exc: OSError
    ) -> DropFile | None:
        """Try an unreadable file again later; past `give_up_after_s`, hand it over with an
        error (no data, no hash) so that it gets an ERROR verdict instead of waiting for ever."""
        entry.failures += 1
        entry.identity = None
        entry.next_try = now + self._settle_s * min(entry.failures, 10)
        if entry.failing_since is None:
            entry.failing_since = now
        elif now - entry.failing_since >= self._give_up_after_s:
            with self._cond:
                if self._pending.get(path) is not entry:
                    return None
                del self._pending[path]
            error = f"could not be read for {now - entry.failing_since:.0f} s: {exc}"
            log.error("drop_unreadable_given_up", camera=self.camera, file=name_text(path),
                      error=name_text(error), attempts=entry.failures)  # fmt: skip
            return DropFile(self.camera, path, "", b"", name_text(error))
        event = log.warning if entry.failures == 1 else log.debug
        event(
            "drop_unreadable_retrying",
            camera=self.camera,
            file=name_text(path),
            error=name_text(str(exc)),
            attempts=entry.failures,
        )
        return None

    def _read(self, path: Path, identity: tuple[int, int, int]) -> DropFile | None:
        """The file's bytes and hash, or None when it changed while being read."""
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as fh:
            if _identity(os.fstat(fh.fileno())) != identity:
                return None
            size = identity[1]
            if size > self._max_bytes:
                digest = hashlib.sha256()
                while chunk := fh.read(_CHUNK):
                    digest.update(chunk)
                data = b""
                error = f"file is {size} bytes, above the limit of {self._max_bytes} bytes"
            else:
                data = fh.read(size + 1)
                digest = hashlib.sha256(data)
                error = None
            if _identity(os.fstat(fh.fileno())) != identity or (
                error is None and len(data) != size
            ):
                return None
        return DropFile(self.camera, path, digest.hexdigest(), data, error)

    def _dispatch(self, drop: DropFile) -> None:
        try:
            self._on_file(drop)
        except Exception:
            log.exception("drop_callback_failed", camera=self.camera, file=name_text(drop.path))
