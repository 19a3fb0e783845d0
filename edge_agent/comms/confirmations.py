"""OK/KO confirmations from the MES (`<prefix>/confirm`) or an operator (`edge-inspect confirm`)."""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.comms.payloads import json_object
from edge_agent.store.journal import LABELS, Journal

SCORED = ("OK", "NOK")


@dataclass(frozen=True)
class Confirmation:
    """A label for one connector of an inspection, or for the board when `connector` is None."""

    result_id: str
    connector: str | None
    label: str
    by: str
    at: str | None = None


def parse_confirmation(payload: bytes) -> Confirmation:
    """`{"result_id", "connector"?, "label": "OK"|"KO", "by", "at"?}`; ValueError says why not."""
    data = json_object(payload, "confirmation")
    unknown = sorted(set(data) - {"result_id", "connector", "label", "by", "at"})
    if unknown:
        raise ValueError(f"confirmation has unknown keys {unknown}")
    result_id, connector, by = data.get("result_id"), data.get("connector"), data.get("by")
    label = data.get("label")
    if not isinstance(result_id, str) or not result_id:
        raise ValueError(f"confirmation result_id {result_id!r} must be a non-empty string")
    if connector is not None and not isinstance(connector, str):
        raise ValueError(f"confirmation connector {connector!r} must be a string")
    if not isinstance(label, str) or label.upper() not in LABELS:
        raise ValueError(f"confirmation label {label!r} is not one of {', '.join(LABELS)}")
    if not isinstance(by, str) or not by.strip():
        raise ValueError(f"confirmation 'by' {by!r} must name who confirmed")
    at = data.get("at")
    if at is not None and not isinstance(at, str):
        raise ValueError(f"confirmation time {at!r} must be an ISO 8601 string")
    return Confirmation(result_id, connector, label.upper(), by, at)


def apply_confirmation(journal: Journal, confirmation: Confirmation) -> list[str]:
    """Journal the confirmation; returns the connectors it labelled.

    Without a connector, OK labels every scored connector of the board and KO labels those the
    verdict found NOK (there must be some: otherwise the connector has to be named).
    """
    connectors = [confirmation.connector] if confirmation.connector else []
    if not connectors:
        record = journal.inspection(confirmation.result_id)
        if record is None:
            raise ValueError(f"confirmation for unknown result_id {confirmation.result_id!r}")
        rows = record["verdict"].get("connectors", [])
        wanted = SCORED if confirmation.label == "OK" else ("NOK",)
        connectors = [row["id"] for row in rows if row.get("evaluation") in wanted]
        if not connectors:
            raise ValueError(
                f"result {confirmation.result_id!r} has no connector the verdict found "
                f"{' or '.join(wanted)}: name the connector to confirm {confirmation.label}"
            )
    for connector in connectors:
        journal.record_confirmation(
            confirmation.result_id, connector, confirmation.label, confirmation.by, confirmation.at
        )
    return connectors
