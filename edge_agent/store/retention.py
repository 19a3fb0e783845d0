"""The retention thread: kept crops, handled inputs and journal rows, pruned in small batches.

Every `retention.prune_interval_s` one pass runs over each part in turn; each batch removes at
most `retention.batch` files or rows and is followed by a short pause, so a large backlog is
worked off over minutes without holding up the line (the journal's write lock is held for one
batch at a time). Each pass logs what it removed and feeds the metrics.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import structlog

from edge_agent.contracts.config import MB, RetentionSettings
from edge_agent.inputs.filed_retention import FiledPruner, Removed
from edge_agent.inputs.filing import LEGACY_DUPLICATES
from edge_agent.ops.telemetry import Telemetry
from edge_agent.store.crop_store import CropStore
from edge_agent.store.journal_retention import InspectionPruner

log = structlog.get_logger()

PAUSE_S = 0.05

Batches = Callable[[int, dt.datetime], Iterator[Removed]]


@dataclass(frozen=True)
class _Part:
    kind: str  # crops, inspections, processed, failed, duplicates
    where: str
    batches: Batches


class Retention:
    """Runs the retention passes on a thread of its own; `run_pass` is one pass, in batches."""

    def __init__(
        self,
        settings: RetentionSettings,
        journal_path: Path,
        folders: Mapping[str, Path],
        crops: CropStore | None,
        telemetry: Telemetry,
        journal_malformed: Callable[[], None] | None = None,
    ) -> None:
        """`journal_malformed` is called when a pass fails on a damaged journal page."""
        self.settings = settings
        self._journal_malformed = journal_malformed
        self.telemetry = telemetry
        self.inspections = InspectionPruner(
            journal_path, settings.inspections_max_age_days, settings.inspections_max_rows
        )
        self.crops = crops
        self.filed: list[tuple[str, str, FiledPruner]] = []
        rules = {
            "processed": (settings.processed_max_age_days, settings.processed_max_disk_mb),
            "failed": (settings.failed_max_age_days, settings.failed_max_disk_mb),
            LEGACY_DUPLICATES: (settings.processed_max_age_days, settings.processed_max_disk_mb),
        }
        for camera, folder in folders.items():
            for kind, (days, mb) in rules.items():
                self.filed.append((kind, camera, FiledPruner(folder / kind, days, int(mb * MB))))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread; its first pass runs at once."""
        self._thread = threading.Thread(target=self._run, name="retention", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop between two batches and close the journal connection."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.inspections.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_pass()
            except Exception as exc:
                log.exception("retention_failed")
                if type(exc) is sqlite3.DatabaseError and self._journal_malformed is not None:
                    self._journal_malformed()
            self._stop.wait(self.settings.prune_interval_s)

    def run_pass(self, now: dt.datetime | None = None) -> dict[str, Removed]:
        """Prune every part once (stopping early when asked to stop); what went, by kind."""
        now = now or dt.datetime.now(dt.UTC)
        totals: dict[str, Removed] = {}
        for part in self._parts():
            items = freed = 0
            for removed in part.batches(self.settings.batch, now):
                items, freed = items + removed.items, freed + removed.bytes
                self.telemetry.retention_removed(part.kind, removed.items, removed.bytes)
                if self._stop.wait(PAUSE_S if removed.items else 0):
                    break
            if items:
                log.info(
                    "retention_pruned", kind=part.kind, where=part.where, removed=items, freed=freed
                )
            before = totals.get(part.kind, Removed(0, 0))
            totals[part.kind] = Removed(before.items + items, before.bytes + freed)
            if self._stop.is_set():
                break
        self._report_kept()
        return totals

    def _parts(self) -> list[_Part]:
        parts = []
        crops = self.crops
        if crops is not None:
            parts.append(_Part("crops", "crops", partial(_crop_batches, crops, self.settings)))
        parts += [_Part(kind, camera, pruner.batches) for kind, camera, pruner in self.filed]
        parts.append(_Part("inspections", "journal", self.inspections.batches))
        return parts

    def _report_kept(self) -> None:
        kept: dict[str, int] = {}
        for kind, _, pruner in self.filed:
            kept[kind] = kept.get(kind, 0) + pruner.usage
        if self.crops is not None:
            kept["crops"] = self.crops.total_bytes()
        for kind, size in kept.items():
            self.telemetry.set_retained_bytes(kind, size)
        self.telemetry.set_journal_inspections(self.inspections.rows)


def _crop_batches(
    crops: CropStore, settings: RetentionSettings, limit: int, now: dt.datetime
) -> Iterator[Removed]:
    while True:
        result = crops.prune(
            settings.max_age_days, int(settings.max_disk_mb * MB), now=now, limit=limit
        )
        yield Removed(result.removed, result.freed_bytes)
        if not (result.more and result.removed):
            return
