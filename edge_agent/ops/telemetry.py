"""Prometheus metrics of the agent, on a registry of its own; labels never carry part ids."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info

NAMESPACE = "edge_inspect"
EVALUATIONS = ("OK", "NOK", "NOT_DECIDABLE", "ERROR")
STAGES = ("decode", "align", "infer", "total")
STAGE_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0)
_REASON = re.compile(r"[a-z][a-z_]{0,39}")


class Telemetry:
    """The metrics the pipeline updates; `registry` is what /metrics exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ns, reg = NAMESPACE, self.registry
        self._verdicts = Counter(
            "verdicts",
            "Connector verdicts by connector and evaluation.",
            ["connector", "evaluation"],
            namespace=ns,
            registry=reg,
        )
        self._boards = Counter(
            "boards", "Board verdicts by evaluation.", ["evaluation"], namespace=ns, registry=reg
        )
        self._stages = Histogram(
            "stage_seconds",
            "Time spent per board in each pipeline stage.",
            ["stage"],
            buckets=STAGE_BUCKETS,
            namespace=ns,
            registry=reg,
        )
        self._outbox = Gauge(
            "outbox_depth",
            "Messages waiting for a broker acknowledgement.",
            namespace=ns,
            registry=reg,
        )
        self._model = Info(
            "model", "Active model per connector.", ["connector"], namespace=ns, registry=reg
        )
        self._input_errors = Counter(
            "input_errors",
            "Inputs that could not be inspected, by reason.",
            ["reason"],
            namespace=ns,
            registry=reg,
        )
        self._mqtt = Gauge(
            "mqtt_connected", "1 while connected to the MQTT broker.", namespace=ns, registry=reg
        )
        for evaluation in EVALUATIONS:
            self._boards.labels(evaluation=evaluation)
        for stage in STAGES:
            self._stages.labels(stage=stage)

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
            self._stages.labels(stage=stage).observe(seconds)

    def set_outbox_depth(self, n: int) -> None:
        """Record how many messages wait in the outbox."""
        self._outbox.set(n)

    def set_model(self, connector: str, version: str, sha256: str) -> None:
        """Record the model now active for a connector (replaces the previous one)."""
        self._model.labels(connector=connector).info({"version": version, "sha256": sha256})

    def input_error(self, reason: str) -> None:
        """Count an input that could not be inspected; `reason` is a short fixed code."""
        if not _REASON.fullmatch(reason):
            raise ValueError(
                f"input error reason {reason!r} must be a short code of lowercase letters and '_'"
            )
        self._input_errors.labels(reason=reason).inc()

    def set_mqtt(self, connected: bool) -> None:
        """Record whether the MQTT client is connected."""
        self._mqtt.set(1 if connected else 0)
