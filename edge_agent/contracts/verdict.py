"""The `inspect.verdict/1` payload: per-connector outcomes, the board rule, and result ids."""

from __future__ import annotations

import math
import re
import secrets
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from edge_agent.contracts.clock import utc_now

SCHEMA = "inspect.verdict/1"
OK, NOK, NOT_DECIDABLE, ERROR = "OK", "NOK", "NOT_DECIDABLE", "ERROR"
Evaluation = Literal["OK", "NOK", "NOT_DECIDABLE", "ERROR"]
# Board rule: the first of these that any connector (or a failed stage) has wins; else OK.
_PRECEDENCE = (NOK, ERROR, NOT_DECIDABLE)
_PART_ID_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
PART_ID_MAX = 64
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_CROCKFORD_SET = frozenset(_CROCKFORD)
ULID_LENGTH = 26
_ulid_lock = threading.Lock()
_ulid_last = 0


def safe_part_id(value: object) -> str | None:
    """A part id fit for a file name and a payload: runs of unsafe characters become `_`."""
    if not isinstance(value, str):
        return None
    cleaned = _PART_ID_UNSAFE.sub("_", value.strip()).strip("._-")[:PART_ID_MAX]
    return cleaned or None


def new_result_id() -> str:
    """A ULID: 48-bit ms time + 80 random bits, Crockford base32; monotonic within a process."""
    global _ulid_last
    with _ulid_lock:
        value = (time.time_ns() // 1_000_000) << 80 | secrets.randbits(80)
        # Within one millisecond (or after the clock steps back) count up, so ids stay sorted.
        value = max(value, _ulid_last + 1)
        _ulid_last = value
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def result_id_ms(result_id: str) -> int:
    """The creation time of a ULID result id, in ms since the epoch (its first 10 characters)."""
    if len(result_id) != ULID_LENGTH or not set(result_id) <= _CROCKFORD_SET:
        raise ValueError(f"result id {result_id!r} is not a ULID")
    millis = 0
    for char in result_id[:10]:
        millis = millis << 5 | _CROCKFORD.index(char)
    return millis


@dataclass(frozen=True)
class Failure:
    """A stage that stopped the board (or a connector) from being fully inspected."""

    stage: str
    message: str
    evaluation: Evaluation = ERROR


@dataclass(frozen=True)
class ConnectorOutcome:
    """One connector's row in the verdict."""

    id: str
    evaluation: Evaluation
    score: float | None
    threshold: float | None
    model: Mapping[str, str] | None
    heatmap_topic: str | None = None
    reason: str | None = None

    @classmethod
    def scored(
        cls, connector: str, score: float, threshold: float, model: Mapping[str, str]
    ) -> ConnectorOutcome:
        """OK below the threshold, NOK at or above it; a non-finite score is an ERROR."""
        if not math.isfinite(score):
            return cls(connector, ERROR, None, threshold, model, reason=f"score is {score}")
        evaluation: Evaluation = NOK if score >= threshold else OK
        return cls(connector, evaluation, score, threshold, model)

    def as_dict(self) -> dict[str, Any]:
        row: dict[str, Any] = {
            "id": self.id,
            "evaluation": self.evaluation,
            "score": None if self.score is None else round(self.score, 4),
            "threshold": self.threshold,
            "model": dict(self.model) if self.model is not None else None,
        }
        if self.heatmap_topic is not None:
            row["heatmap_topic"] = self.heatmap_topic
        if self.reason is not None:
            row["reason"] = self.reason
        return row


def board_evaluation(evaluations: Sequence[str]) -> Evaluation:
    """NOK if any is NOK, else ERROR, else NOT_DECIDABLE, else OK; an empty board is ERROR."""
    if not evaluations:
        return ERROR
    for evaluation in _PRECEDENCE:
        if evaluation in evaluations:
            return evaluation
    return OK


def build_verdict(
    *,
    result_id: str,
    station: str,
    camera: str,
    part_id: str | None,
    source_uri: str,
    source_sha256: str,
    captured_at: str | None,
    processing_ms: Mapping[str, float],
    connectors: Sequence[ConnectorOutcome],
    failure: Failure | None = None,
    created_at: str | None = None,
) -> dict[str, Any]:
    """The verdict payload; `session` and `seq` are added by the journal."""
    evaluations = [c.evaluation for c in connectors]
    if failure is not None:
        evaluations.append(failure.evaluation)
    verdict: dict[str, Any] = {
        "schema": SCHEMA,
        "result_id": result_id,
        "part_id": part_id,
        "camera": camera,
        "station": station,
        "source": {"uri": source_uri, "sha256": source_sha256},
        "captured_at": captured_at,
        "created_at": created_at or utc_now(),
        "processing_ms": {k: round(v) for k, v in processing_ms.items()},
        "evaluation": board_evaluation(evaluations),
        "historical": False,
        "connectors": [c.as_dict() for c in connectors],
    }
    if failure is not None:
        verdict["error"] = {"stage": failure.stage, "message": failure.message}
    return verdict
