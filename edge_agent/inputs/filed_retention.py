"""Retention of handled inputs: one outcome folder of one camera kept within an age and a size.

Files go oldest first: those past the age, then the oldest while the folder is above its size.
A file's age is its result id's time (its name starts with it, see `inputs/filing.py`); files
filed flat by older versions (and the legacy `duplicates/`) go by modification time, before
any day folder. A past day's size is measured once and kept while its folder is unchanged, so
a pass lists today's folder and the folders it prunes, not the whole history.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from edge_agent.contracts.verdict import ULID_LENGTH, result_id_ms
from edge_agent.inputs.filing import REASON_SUFFIX

log = structlog.get_logger(__name__)

_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Removed:
    """What one batch of a retention pass removed."""

    items: int
    bytes: int


@dataclass(frozen=True)
class _Entry:
    path: Path
    ms: int


class FiledPruner:
    """Keeps one camera's `processed/`, `failed/` or `duplicates/` within an age and a size."""

    def __init__(self, root: Path, max_age_days: float, max_bytes: int) -> None:
        self.root = Path(root)
        self.max_age = dt.timedelta(days=max_age_days)
        self.max_bytes = max_bytes
        self.usage = 0
        """Bytes in the folder after the last pass."""
        self._days: dict[str, tuple[int, int]] = {}  # past day -> (folder mtime_ns, bytes)

    def batches(self, limit: int, now: dt.datetime | None = None) -> Iterator[Removed]:
        """One pass, yielding after every `limit` inputs removed (and once at its end)."""
        now = now or dt.datetime.now(dt.UTC)
        cutoff_ms = int((now - self.max_age).timestamp() * 1000)
        today = now.strftime("%Y-%m-%d")
        days = self._day_folders()
        loose = self._loose_files()
        self.usage = sum(self._day_bytes(day, today) for day in days) + sum(
            _size(entry.path) for entry in loose
        )
        items = freed = 0
        for entry in self._oldest_first(loose, days):
            if entry.ms >= cutoff_ms and self.usage <= self.max_bytes:
                break
            size = _size(entry.path)
            with contextlib.suppress(FileNotFoundError):
                entry.path.unlink()
            self.usage -= size
            freed += size
            items += not entry.path.name.endswith(REASON_SUFFIX)  # a note goes with its input
            if items >= limit:
                yield Removed(items, freed)
                items = freed = 0
        # Yesterday's folder may still receive a board journaled just before midnight.
        self._remove_empty_days(days, (now - dt.timedelta(days=1)).strftime("%Y-%m-%d"))
        yield Removed(items, freed)

    def _day_folders(self) -> list[str]:
        try:
            with os.scandir(self.root) as entries:
                days = [e.name for e in entries if _DAY.fullmatch(e.name) and e.is_dir()]
        except FileNotFoundError:
            return []
        return sorted(days)

    def _loose_files(self) -> list[_Entry]:
        """Files directly in the folder (filed before the day folders), by modification time."""
        found = []
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root) as entries:
            for entry in entries:
                if entry.is_file(follow_symlinks=False):
                    mtime_ms = entry.stat(follow_symlinks=False).st_mtime_ns // 1_000_000
                    found.append(_Entry(Path(entry.path), mtime_ms))
        return sorted(found, key=lambda e: (e.ms, e.path.name))

    def _day_bytes(self, day: str, today: str) -> int:
        folder = self.root / day
        try:
            mtime = folder.stat().st_mtime_ns
        except FileNotFoundError:
            return 0
        cached = self._days.get(day)
        if cached is not None and cached[0] == mtime:
            return cached[1]
        total = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    total += entry.stat(follow_symlinks=False).st_size
        if day < today:  # today's folder still grows: measured again on every pass
            self._days[day] = (mtime, total)
        return total

    def _oldest_first(self, loose: list[_Entry], days: list[str]) -> Iterator[_Entry]:
        yield from loose
        for day in days:
            try:
                names = sorted(os.listdir(self.root / day))
            except FileNotFoundError:
                continue
            for name in names:
                path = self.root / day / name
                yield _Entry(path, _filed_ms(path))

    def _remove_empty_days(self, days: list[str], before: str) -> None:
        for day in days:
            if day >= before:
                break
            with contextlib.suppress(OSError):  # not empty: its files are still kept
                (self.root / day).rmdir()
                self._days.pop(day, None)


def _filed_ms(path: Path) -> int:
    """The time a filed input was journaled: its name's result id, else its modification time."""
    with contextlib.suppress(ValueError):
        return result_id_ms(path.name[:ULID_LENGTH])
    try:
        return path.lstat().st_mtime_ns // 1_000_000
    except FileNotFoundError:
        return 0


def _size(path: Path) -> int:
    try:
        return path.lstat().st_size
    except FileNotFoundError:
        return 0
