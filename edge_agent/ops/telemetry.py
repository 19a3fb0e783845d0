"""Prometheus metrics of the agent, on a registry of its own; labels never carry part ids."""

from __future__ import annotations

import collections
import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

NAMESPACE = "edge_inspect"
EVALUATIONS = ("OK", "NOK", "NOT_DECIDABLE", "ERROR")
STAGES = ("decode", "align", "infer", "total")
RETENTION_KINDS = ("crops", "processed", "failed", "duplicates", "inspections")
STAGE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
_REASON = re.compile(r"[a-z][a-z_]{0,39}")

_METRICS = (
    # name, kind, help text, labels, extra arguments
    ("verdicts", Counter, "Connector verdicts by connector and evaluation.",
     ["connector", "evaluation"], {}),
    ("boards", Counter, "Board verdicts by evaluation.", ["evaluation"], {}),
    ("stage_seconds", Histogram, "Time spent per board in each pipeline stage.", ["stage"],
     {"buckets": STAGE_BUCKETS}),
    ("outbox_depth", Gauge, "Messages waiting for a broker acknowledgement.", [], {}),
    ("model", Info, "Active model per connector.", ["connector"], {}),
    ("input_errors", Counter, "Inputs that could not be inspected, by reason.", ["reason"], {}),
    ("mqtt_connected", Gauge, "1 while connected to the MQTT broker.", [], {}),
    ("mqtt_refused", Counter, "Inbound MQTT messages refused, by reason (unknown_camera: "
     "acknowledged; spool_failed, disk_low: left unacknowledged for redelivery).", ["reason"],
     {}),
    ("retention_removed", Counter, "Files, crops and journal rows removed by retention, by kind "
     "(crops, processed, failed, duplicates, inspections).", ["kind"], {}),
    ("retention_freed_bytes", Counter, "Bytes freed by retention, by kind.", ["kind"], {}),
    ("retained_bytes", Gauge, "Bytes kept after the last retention pass, by kind (crops; "
     "processed, failed, duplicates: every camera's folders).", ["kind"], {}),
    ("journal_inspections", Gauge, "Inspections in the journal after the last retention pass.",
     [], {}),
    ("journal_errors", Counter, "Journal writes that failed (each retry counts).", [], {}),
    ("journal_ok", Gauge, "1 while the journal takes writes, 0 from a failure to a success.",
     [], {}),
    ("journal_intact", Gauge, "1 while the journal's last integrity check found nothing wrong.",
     [], {}),
    ("journal_backlog", Gauge, "Boards waiting for a journal retry (their files stay put).",
     [], {}),
    ("state_free_bytes", Gauge, "Free bytes on the state filesystem (journal, crops).", [], {}),
    ("ready", Gauge, "1 while the agent is ready (/readyz 200), 0 while any reason holds.", [],
     {}),
    ("not_ready_reason", Gauge, "Reasons the agent is not ready, by code (0 once cleared).",
     ["code"], {}),
    ("drift_cpu_seconds", Counter, "CPU time the drift monitor took, by stage: capture (the "
     "photo's measures, on the inspection thread) and monitor (its own thread).", ["stage"],
     {}),
    ("drift_state", Gauge, "Drift state per connector and of the photo (connector=\"capture\"): "
     "0 ok, 1 warning, 2 alarm.", ["connector"], {}),
)  # fmt: skip
DRIFT_LEVELS = {"ok": 0, "warning": 1, "alarm": 2}


class Telemetry:
    """The metrics the pipeline updates; `registry` is what /metrics exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        metrics = {
            name: kind(name, text, labels, namespace=NAMESPACE, registry=self.registry, **extra)
            for name, kind, text, labels, extra in _METRICS
        }
        self._verdicts = metrics["verdicts"]
        self._boards = metrics["boards"]
        self._stages = metrics["stage_seconds"]
        self._outbox = metrics["outbox_depth"]
        self._model = metrics["model"]
        self._input_errors = metrics["input_errors"]
        self._mqtt = metrics["mqtt_connected"]
        self._mqtt_refused = metrics["mqtt_refused"]
        self._retention_removed = metrics["retention_removed"]
        self._retention_freed = metrics["retention_freed_bytes"]
        self._retained_bytes = metrics["retained_bytes"]
        self._journal_inspections = metrics["journal_inspections"]
        for kind in RETENTION_KINDS:
            self._retention_removed.labels(kind=kind)
            self._retention_freed.labels(kind=kind)
        self._journal_errors = metrics["journal_errors"]
        self._journal_ok = metrics["journal_ok"]
        self._journal_backlog = metrics["journal_backlog"]
        self._journal_intact = metrics["journal_intact"]
        self._state_free = metrics["state_free_bytes"]
        self._ready = metrics["ready"]
        self._not_ready = metrics["not_ready_reason"]
        self._drift = metrics["drift_state"]
        # Each board touches these: their labelled children are looked up once, here.
        self._drift_cpu = {
            stage: metrics["drift_cpu_seconds"].labels(stage=stage)
            for stage in ("capture", "monitor")
        }
        for evaluation in EVALUATIONS:
            self._boards.labels(evaluation=evaluation)
        self._stage = {stage: self._stages.labels(stage=stage) for stage in STAGES}

    def observe_board(
        self,
        evaluation: str,
        connectors: list[tuple[str, str]],
        timings: dict[str, float],
    ) -> None:
        """Count one board, its (connector, evaluation) pairs and its stage times in seconds."""
        self._boards.labels(evaluation=evaluation).inc()
        for connector, connector_evaluation in connectors:
            self._verdicts.labels(connector=connector, evaluation=connector_evaluation).inc()
        for stage, seconds in timings.items():
            self._stage_child(stage).observe(seconds)

    def observe_stage(self, stage: str, seconds: float) -> None:
        """One board's time in a stage outside the verdict's `processing_ms` (capture, drift)."""
        self._stage_child(stage).observe(seconds)

    def _stage_child(self, stage: str) -> Histogram:
        """The stage's histogram child, looked up once (`labels` costs about a microsecond)."""
        child = self._stage.get(stage)
        if child is None:
            child = self._stage[stage] = self._stages.labels(stage=stage)
        return child

    def add_drift_cpu(self, stage: str, seconds: float) -> None:
        """CPU seconds the drift monitor's `stage` (capture, monitor) took for one or more
        boards."""
        self._drift_cpu[stage].inc(seconds)

    def set_outbox_depth(self, n: int) -> None:
        """Record how many messages wait in the outbox."""
        self._outbox.set(n)

    def set_model(self, connector: str, version: str, sha256: str) -> None:
        """Record the model now active for a connector (replaces the previous one)."""
        self._model.labels(connector=connector).info({"version": version, "sha256": sha256})

    def input_error(self, reason: str) -> None:
        """Count an input that could not be inspected; `reason` is a short fixed code."""
        self._input_errors.labels(reason=_code(reason)).inc()

    def mqtt_refused(self, reason: str) -> None:
        """Count an inbound MQTT message refused; `reason` is a short fixed code."""
        self._mqtt_refused.labels(reason=_code(reason)).inc()

    def retention_removed(self, kind: str, items: int, freed_bytes: int) -> None:
        """Count what a retention batch removed; `kind` is one of `RETENTION_KINDS`."""
        self._retention_removed.labels(kind=_kind(kind)).inc(items)
        self._retention_freed.labels(kind=_kind(kind)).inc(freed_bytes)

    def set_retained_bytes(self, kind: str, size: int) -> None:
        """Record the bytes a kind of kept files uses after a retention pass."""
        self._retained_bytes.labels(kind=_kind(kind)).set(size)

    def set_journal_inspections(self, rows: int) -> None:
        """Record how many inspections the journal holds after a retention pass."""
        self._journal_inspections.set(rows)

    def set_mqtt(self, connected: bool) -> None:
        """Record whether the MQTT client is connected."""
        self._mqtt.set(1 if connected else 0)

    def journal_error(self) -> None:
        """Count one failed journal write."""
        self._journal_errors.inc()

    def set_journal_ok(self, ok: bool) -> None:
        """Record whether the journal takes writes."""
        self._journal_ok.set(1 if ok else 0)

    def set_journal_intact(self, intact: bool) -> None:
        """Record the outcome of the journal's last integrity check."""
        self._journal_intact.set(1 if intact else 0)

    def set_journal_backlog(self, n: int) -> None:
        """Record how many boards wait for a journal retry."""
        self._journal_backlog.set(n)

    def set_state_free_bytes(self, n: int) -> None:
        """Record the free bytes of the state filesystem."""
        self._state_free.set(n)

    def set_readiness(self, codes: list[str]) -> None:
        """Record the codes of the reasons that hold now (one per reason; none: ready)."""
        counts = collections.Counter(_code(code) for code in codes)
        known = {sample.labels["code"] for sample in self._not_ready.collect()[0].samples}
        for code in known | counts.keys():
            self._not_ready.labels(code=code).set(counts[code])
        self._ready.set(0 if codes else 1)

    def set_drift(self, subject: str, state: str) -> None:
        """Record a drift subject's state (ok, warning, alarm)."""
        self._drift.labels(connector=subject).set(DRIFT_LEVELS[state])


def _code(reason: str) -> str:
    if not _REASON.fullmatch(reason):
        raise ValueError(f"reason {reason!r} must be a short code of lowercase letters and '_'")
    return reason


def _kind(kind: str) -> str:
    if kind not in RETENTION_KINDS:
        raise ValueError(f"retention kind {kind!r} is not one of {RETENTION_KINDS}")
    return kind
