"""The agent's own readiness reasons in plain words: connectors and models, the pipeline's
threads, the outbox and storage. Pure functions of what the agent measured."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edge_agent.contracts.bundle import MISFIT
from edge_agent.ops.readiness import Reason

MB = 1024 * 1024


def connector_reasons(
    enabled: Sequence[str], loaded: Mapping[str, Any], errors: Mapping[str, str]
) -> list[Reason]:
    """No connector to inspect, or an enabled connector without a loadable model."""
    if not enabled:
        return [
            Reason(
                "no_connector",
                "no connector is enabled in [connectors]: every board would be an ERROR",
                "add a connector's box to config.toml ([connectors.<id>] box = [x, y, w, h], "
                "or draw it on the console's set-up page), train its model, restart the agent",
            )
        ]
    return [_model_reason(cid, errors.get(cid) or "") for cid in enabled if cid not in loaded]


def _model_reason(cid: str, error: str) -> Reason:
    """Why a connector has no model: one made for another connector/crop, or none loadable."""
    if MISFIT in error:
        return Reason(
            "model_mismatch",
            f"connector {cid}'s active model was refused, it {MISFIT} ({error}): "
            f"its boards are ERROR",
            f"point models/{cid}/active at a bundle trained for {cid} with its current box "
            f"(`edge-inspect models`), or retrain it (`edge-inspect retrain --now`)",
        )
    return Reason(
        "model_missing",
        f"connector {cid} has no loadable model ({error or 'no active model'}): "
        f"its boards are ERROR",
        f"train it (`edge-inspect train` or `edge-inspect retrain --now`) or point "
        f"models/{cid}/active at a valid bundle; or set connectors.{cid}.enabled = false",
    )


def pipeline_reasons(inputs_alive: bool, workers_alive: bool, stopping: bool) -> list[Reason]:
    """Threads of the pipeline that stopped, or the agent shutting down."""
    reasons = []
    if stopping:
        reasons.append(Reason("stopping", "the agent is shutting down", "wait for its restart"))
    if not inputs_alive:
        reasons.append(
            Reason(
                "inputs_stopped",
                "an input watcher stopped: new boards are not picked up",
                "restart the agent (systemctl restart edge-inspect) and see its log",
            )
        )
    if not workers_alive:
        reasons.append(
            Reason(
                "workers_stopped",
                "an inspection worker stopped: boards are not inspected",
                "restart the agent (systemctl restart edge-inspect) and see its log",
            )
        )
    return reasons


def outbox_reasons(depth: int, max_outbox: int) -> list[Reason]:
    """Too many messages waiting for the broker."""
    if depth < max_outbox:
        return []
    return [
        Reason(
            "outbox_full",
            f"{max_outbox} or more messages wait for the broker (health.max_outbox)",
            "make the MQTT broker reachable; the outbox drains once it is",
        )
    ]


def storage_reasons(report: Mapping[str, Any]) -> list[Reason]:
    """The journal failing or behind, or the state filesystem below its floor."""
    reasons = []
    if report.get("journal") == "damaged":
        reasons.append(
            Reason(
                "journal_damaged",
                f"the journal failed its integrity check: {report.get('journal_error')}",
                "stop the agent, run `edge-inspect journal recover --config <config.toml>`, "
                "start it again",
            )
        )
    elif report.get("journal") == "failing":
        reasons.append(
            Reason(
                "journal_failing",
                f"the journal has failed its writes since {report.get('failing_since')}: "
                f"{report.get('journal_error')}",
                "free space or fix the state folder's filesystem; boards wait and are retried",
            )
        )
    elif report.get("journal_backlog"):
        reasons.append(
            Reason(
                "journal_backlog",
                "boards wait for a journal retry (their files stay where they arrived)",
                "wait for the retry; see the agent's log if it lasts",
            )
        )
    stuck = report.get("stuck_input")
    if stuck:
        reasons.append(
            Reason(
                "input_stuck",
                f"input {stuck.get('input')} could neither be handled nor given up: "
                f"{stuck.get('reason')}; the systemd watchdog is no longer pinged",
                "systemd restarts the agent; if the same input stops the line again, move it "
                "out of the drop folder",
            )
        )
    if report["free_bytes"] < report["min_free_bytes"]:
        floor_mb = report["min_free_bytes"] / MB
        reasons.append(
            Reason(
                "disk_low",
                f"the state filesystem has less than {floor_mb:.0f} MB free (storage.min_free_mb)",
                "free space on the state folder's filesystem (old crops, logs) or enlarge it",
            )
        )
    return reasons
