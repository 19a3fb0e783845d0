"""The nightly job: per connector, assemble data, train a candidate, gate it, install or refuse.

Nothing the agent reads changes until a decision is made: candidates are trained and staged
under `<models>/.retrain/` (same file system, never a connector the agent loads) and reach
`<models>/<connector>/` by one rename, then one atomic link switch (`auto`: `active`;
`shadow`: `candidate`), or go to `rejected/<version>` with their reason. A job killed at any
point leaves only `.retrain/` and `<state>/retrain/work/`, which the next run clears.
"""

from __future__ import annotations

import fcntl
import secrets
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog

from edge_agent.comms.mqtt_once import publish_retained
from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.bundle import (
    active_dir,
    connector_dir,
    list_versions,
    next_version,
    publish_bundle,
)
from edge_agent.contracts.clock import utc_now
from edge_agent.feedback import lifecycle
from edge_agent.store.crop_store import JOURNAL_FILE, CropStore
from edge_agent.store.journal import Journal
from trainer.datasets import load_crops
from trainer.masks import load_roi_file
from trainer.retrain.dataset import (
    LIBRARY_DIR,
    SET_FILE,
    assembler_for,
    collect_library,
    materialise,
    read_record,
)
from trainer.retrain.early import drift_alarm, early_retrains
from trainer.retrain.gate import check_model, decide
from trainer.retrain.recalibrate import Recalibration, recalibrate
from trainer.retrain.runs import LAST_RUN_FILE, record_early_run, retrain_root
from trainer.settings import TrainerConfig
from trainer.train_connector import train_connector

log = structlog.get_logger()

WORK_DIR = "work"
STAGING_MODELS = ".retrain"
LOCK_FILE = ".lock"
STATUS_FILE = "status.json"
GATE_FILE = "gate.json"
MAX_REPORTED_SKIPS = 20


class RetrainBusy(RuntimeError):
    """Another retraining run holds the lock."""


@dataclass
class ConnectorResult:
    """What one connector's retraining ended in, with the numbers behind it."""

    connector: str
    outcome: str  # installed | candidate | refused | unchanged | failed
    version: str | None = None
    reason: str = ""
    gate: dict[str, Any] | None = None
    counts: dict[str, int] = field(default_factory=dict)
    skipped_crops: list[dict[str, str]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["skipped_crops"] = self.skipped_crops[:MAX_REPORTED_SKIPS]
        return data


@dataclass
class RunReport:
    """One run of the job over its connectors."""

    run_id: str
    trigger: str
    started_at: str
    results: list[ConnectorResult] = field(default_factory=list)
    finished_at: str | None = None

    @property
    def ok(self) -> bool:
        return all(r.outcome != "failed" for r in self.results)

    def status(self, state: str, pending: Sequence[str] = ()) -> dict[str, Any]:
        """The retained `trainer/status` payload."""
        return {
            "state": state,
            "run_id": self.run_id,
            "trigger": self.trigger,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "pending": list(pending),
            "connectors": {r.connector: r.as_dict() for r in self.results},
        }


class RetrainJob:
    """Runs the nightly job once; `announce` publishes `trainer/status` as it goes."""

    def __init__(
        self,
        config: TrainerConfig,
        trigger: str = "manual",
        announce: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.config = config
        self.trigger = trigger
        self.root = retrain_root(config)
        self.work = self.root / WORK_DIR
        self.staging = config.paths.models / STAGING_MODELS
        self.announce = announce or self._publish

    def _publish(self, status: dict[str, Any]) -> None:
        publish_retained(self.config.mqtt, {"trainer/status": status}, role="trainer")

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / LOCK_FILE, "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RetrainBusy(
                    f"{self.root / LOCK_FILE}: another retraining run is busy"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _clear_scratch(self) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        shutil.rmtree(self.staging, ignore_errors=True)

    def _chosen(self, connectors: Sequence[str] | None) -> list[str]:
        enabled = self.config.enabled_connectors()
        unknown = sorted(set(connectors or ()) - set(enabled))
        if unknown:
            raise ValueError(f"connectors {unknown} are not enabled in the config ({enabled})")
        return list(connectors or enabled)

    def recalibrate(
        self, connectors: Sequence[str] | None = None, dry_run: bool = False
    ) -> list[Recalibration]:
        """Thresholds from the line for the given (default: every enabled) connectors."""
        chosen = self._chosen(connectors)
        with self._lock():
            store = CropStore(self.config.paths.state)
            try:
                return [
                    recalibrate(
                        self.config, c, store, dry_run=dry_run, drift_alarm=self._drift_alarm
                    )
                    for c in chosen
                ]
            finally:
                store.close()

    def run(
        self, connectors: Sequence[str] | None = None, force: bool = False, early: bool = False
    ) -> RunReport:
        """Retrain the given (default: every enabled) connectors, one after another; one with
        nothing new to learn from is recalibrated from the line instead (`retrain.recalibrate`).
        `early`: only those of them whose drift alarm asks for an early retrain now, decided and
        recorded under the job's lock (one early run per alarm)."""
        chosen = self._chosen(connectors)
        report = RunReport(f"run-{secrets.token_hex(4)}", self.trigger, utc_now())
        with self._lock():
            if early:
                chosen = self._early(chosen, report.run_id)
                if not chosen:
                    report.finished_at = utc_now()
                    return report
            self._clear_scratch()
            write_json_atomic(
                self.root / LAST_RUN_FILE,
                {"started_at": report.started_at, "trigger": self.trigger},
            )
            self._status(report, "running", chosen)
            journal = Journal(self.config.paths.state / JOURNAL_FILE)
            store = CropStore(self.config.paths.state)
            try:
                for index, connector in enumerate(chosen):
                    report.results.append(self._one(connector, store, force))
                    self._status(report, "running", chosen[index + 1 :])
            finally:
                store.close()
                journal.close()
                self._clear_scratch()
            report.finished_at = utc_now()
            self._status(report, "idle")
        return report

    def _early(self, chosen: Sequence[str], run_id: str) -> list[str]:
        """The chosen connectors whose drift alarm asks for an early retrain, each recorded as
        this run's and logged with its reason."""
        due = [e for e in early_retrains(self.config) if e.connector in chosen]
        for early in due:
            record_early_run(self.config, early.connector, early.since, run_id)
            log.info("retrain_early", connector=early.connector, reason=early.reason)
        if not due:
            log.info("retrain_early_none", reason="no drift alarm asks for an early retrain")
        return [e.connector for e in due]

    def _status(self, report: RunReport, state: str, pending: Sequence[str] = ()) -> None:
        status = report.status(state, pending)
        write_json_atomic(self.root / STATUS_FILE, status)
        self.announce(status)

    def _one(self, connector: str, store: CropStore, force: bool) -> ConnectorResult:
        started = time.perf_counter()
        try:
            result = self._retrain(connector, store, force)
            if result.outcome == "unchanged" and self.config.retrain.recalibrate:
                result = self._recalibrate(result, store)
        except Exception as exc:  # one connector failing never stops the others
            log.exception("retrain_failed", connector=connector)
            result = ConnectorResult(connector, "failed", reason=f"{type(exc).__name__}: {exc}")
        finally:
            shutil.rmtree(self.work / connector, ignore_errors=True)
            shutil.rmtree(self.staging / connector, ignore_errors=True)
        result.seconds = round(time.perf_counter() - started, 1)
        log.info(
            "retrain_done",
            connector=connector,
            outcome=result.outcome,
            version=result.version,
            reason=result.reason,
            seconds=result.seconds,
        )
        return result

    def _drift_alarm(self, connector: str) -> str | None:
        return drift_alarm(self.config, connector)

    def _recalibrate(self, unchanged: ConnectorResult, store: CropStore) -> ConnectorResult:
        """The line's threshold for a connector that was not retrained; reported as its result
        when it changed something (rolled out or refused by the gate)."""
        line = recalibrate(self.config, unchanged.connector, store, drift_alarm=self._drift_alarm)
        if line.outcome == "unchanged":
            unchanged.reason += f"; recalibration: {line.reason}"
            return unchanged
        reason = f"threshold from the line: {line.reason}"
        return ConnectorResult(
            unchanged.connector, line.outcome, line.version, reason, line.gate, unchanged.counts
        )

    def _retrain(self, connector: str, store: CropStore, force: bool) -> ConnectorResult:
        config, settings = self.config, self.config.retrain
        models = config.paths.models
        _, _, width, height = config.connectors[connector].box
        library = self.root / connector / LIBRARY_DIR
        active = active_dir(models, connector)
        assembly = assembler_for(config, connector).assemble(
            settings.seed_data / connector if settings.seed_data else None, store, active
        )
        for skipped in assembly.skipped:
            log.warning("crop_skipped", connector=connector, **skipped)
        base = {"counts": assembly.counts, "skipped_crops": assembly.skipped}
        if assembly.unchanged and not force:
            reason = "no new confirmed crops since the active model"
            current = active.name if active is not None else None
            return ConnectorResult(connector, "unchanged", current, reason, **base)
        if not assembly.train or len(assembly.calibration_ok) < 2:
            reason = (
                f"too little data: {len(assembly.train)} training and "
                f"{len(assembly.calibration_ok)} calibration OK crops (need 1 and 2)"
            )
            return ConnectorResult(connector, "failed", None, reason, **base)
        work = materialise(assembly, library, self.work / connector)
        version = next_version(models, connector)
        rois = load_roi_file(config.training.roi_file) if config.training.roi_file else {}
        outcome = train_connector(
            work,
            self.staging,
            config.training,
            connector=connector,
            roi=rois.get(connector),
            activate_bundle=False,
            version=version,
            record_sets=False,
        )
        bundle = outcome.bundle_dir
        write_json_atomic(bundle / SET_FILE, assembly.record())
        size = (height, width)
        gate_ok = load_crops([library / c.name for c in assembly.gate_ok], size)
        ko = load_crops([library / c.name for c in assembly.ko], size)
        decision = decide(
            check_model(bundle, gate_ok, ko),
            check_model(active, gate_ok, ko) if active is not None else None,
            settings.false_reject_tolerance,
        )
        gate = decision.as_dict()
        if decision.accepted:
            write_json_atomic(bundle / GATE_FILE, gate)
            publish_bundle(bundle, models, connector, version)
            if settings.rollout == "auto":
                lifecycle.install(models, connector, version, "trainer", gate=decision.summary)
                result = ConnectorResult(connector, "installed", version, decision.summary, gate)
            else:
                lifecycle.set_candidate(models, connector, version, "trainer")
                result = ConnectorResult(connector, "candidate", version, decision.summary, gate)
        else:
            lifecycle.refuse(models, connector, bundle, version, "trainer", gate)
            result = ConnectorResult(connector, "refused", version, decision.summary, gate)
        self._tidy(connector)
        result.counts, result.skipped_crops = base["counts"], base["skipped_crops"]
        return result

    def _tidy(self, connector: str) -> None:
        """Drop old versions beyond `keep_versions` and library crops no kept model needs."""
        models = self.config.paths.models
        removed = lifecycle.prune_versions(models, connector, self.config.retrain.keep_versions)
        keep: set[str] = set()
        for version in list_versions(models, connector):
            record = read_record(connector_dir(models, connector) / version)
            for role in ("train", "calibration_ok", "gate_ok", "ko"):
                keep.update((record or {}).get(role, []))
        dropped = collect_library(self.root / connector / LIBRARY_DIR, keep)
        if removed or dropped:
            log.info("retrain_tidied", connector=connector, versions=removed, crops=dropped)
