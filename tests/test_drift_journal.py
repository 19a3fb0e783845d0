"""The journal's drift tables: state rows replaced per subject and read back, history rows and
the retained messages written in one transaction, an older journal migrated, old history
pruned with the inspections' age, subjects no longer watched dropped at start, a batch's
changes written together in order and announced once."""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.comms.drift_publisher import DriftPublisher, Step
from edge_agent.contracts.config import StationConfig
from edge_agent.inspect.capture import MEASURES
from edge_agent.inspect.scoring import ModelRegistry
from edge_agent.ops.telemetry import Telemetry
from edge_agent.store.journal import SCHEMA_VERSION, Journal, OutboxMessage
from edge_agent.store.journal_retention import InspectionPruner


def state_row(subject: str, state: str, statistic: float) -> dict:
    return {
        "subject": subject,
        "state": state,
        "reason": f"{subject}: {state}",
        "since": "2026-12-06T10:00:00.000Z",
        "measure": "brightness" if state != "ok" else None,
        "statistic": statistic,
        "value": 84.0,
        "reference": 120.0,
        "boards": 200,
        "result_id": "r1",
        "model_version": None,
        "detail": json.dumps({"boards": 200}),
    }


def test_states_are_replaced_per_subject_and_read_back_with_their_messages(
    journal: Journal,
) -> None:
    message = OutboxMessage("p/drift/capture", b"{}", qos=1, retain=True, is_json=True)
    journal.record_drift([state_row("capture", "ok", 0.1)], [], [])
    history = [{"at": "2026-12-06T10:00:00.000Z", "subject": "capture",
                "measure": "brightness", "statistic": 1.2, "state": "alarm"}]  # fmt: skip
    journal.record_drift([state_row("capture", "alarm", 1.2)], history, [message])

    states = journal.drift_states()
    assert list(states) == ["capture"] and states["capture"]["state"] == "alarm"
    assert json.loads(states["capture"]["detail"]) == {"boards": 200}
    (pending,) = journal.pending(10)
    assert pending.topic == "p/drift/capture" and pending.retain
    with sqlite3.connect(journal.path) as db:
        assert db.execute("SELECT subject, state FROM drift_history").fetchall() == [
            ("capture", "alarm")
        ]


def test_deferred_rows_ride_in_the_next_inspection_and_survive_its_failure(
    journal: Journal,
) -> None:
    journal.record_inspection({"result_id": "r1", "evaluation": "OK"}, [], "p/verdict")
    journal.defer_drift([state_row("J1", "ok", 0.2)], [])
    assert journal.drift_states() == {}  # no commit of their own
    with pytest.raises(sqlite3.IntegrityError):  # the same result id again: rolled back
        journal.record_inspection({"result_id": "r1", "evaluation": "OK"}, [], "p/verdict")
    assert journal.drift_states() == {}
    journal.record_inspection({"result_id": "r2", "evaluation": "OK"}, [], "p/verdict")
    assert journal.drift_states()["J1"]["statistic"] == 0.2


def test_a_schema_3_journal_gets_the_drift_tables(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    with sqlite3.connect(path) as db:
        db.execute("DROP TABLE drift_states")
        db.execute("DROP TABLE drift_history")
        db.execute("PRAGMA user_version=3")
    journal = Journal(path)
    journal.start_session()
    journal.record_drift([state_row("J1", "warning", 0.8)], [], [])
    assert journal.drift_states()["J1"]["state"] == "warning"
    journal.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_old_drift_history_goes_with_the_inspections_age(journal: Journal) -> None:
    now = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    rows = [
        {"at": at, "subject": "J1", "measure": None, "statistic": 0.0, "state": "ok"}
        for at in ("2026-08-01T00:00:00.000Z", "2026-12-05T00:00:00.000Z")
    ]
    journal.record_drift([], rows, [])
    pruner = InspectionPruner(journal.path, max_age_days=90, max_rows=1000)
    try:
        list(pruner.batches(100, now))
    finally:
        pruner.close()
    with sqlite3.connect(journal.path) as db:
        kept = db.execute("SELECT at FROM drift_history").fetchall()
    assert kept == [("2026-12-05T00:00:00.000Z",)]


def test_subjects_no_longer_watched_are_dropped_and_their_retained_messages_cleared(
    tmp_path: Path, journal: Journal
) -> None:
    """J2 was removed from the config and J1 has no model any more: at start their rows go and
    an empty retained message clears each topic; the capture's row is taken up."""
    journal.record_drift([state_row(s, "alarm", 1.5) for s in ("capture", "J1", "J2")], [], [])
    publisher = capture_only_publisher(tmp_path, journal, lambda: None)

    assert publisher.start() == {"capture": "ok"}
    publisher.stop()

    assert list(journal.drift_states()) == ["capture"]
    cleared = {m.topic: m for m in journal.pending(10) if m.payload == b""}
    assert sorted(cleared) == ["p/drift/J1", "p/drift/J2"]
    assert all(m.retain for m in cleared.values())


def capture_only_publisher(
    tmp_path: Path, journal: Journal, changed: Callable[[], None]
) -> DriftPublisher:
    """A publisher whose one watched subject is the capture (J1 has no model)."""
    reference = tmp_path / "reference.png"
    cv2.imwrite(str(reference), np.full((64, 96, 3), 128, np.uint8))
    config = StationConfig.model_validate(
        {
            "station": {"name": "s", "reference_image": str(reference)},
            "connectors": {"J1": {"box": [0, 0, 16, 16]}},
            "mqtt": {"prefix": "p"},
        }
    )
    registry = ModelRegistry(tmp_path / "models", ["J1"], threads=1)
    return DriftPublisher(config, journal, registry, Telemetry(), changed)


def test_a_batchs_changes_are_written_together_in_order_and_announced_once(
    tmp_path: Path, journal: Journal
) -> None:
    """A batch in which the light goes dark for two boards and is back for 60: the capture
    rises to alarm and clears within it; both messages are queued in that order, the state
    row is the last one, and the status is republished once, not per change."""
    rng = np.random.default_rng(3)
    announced = []
    publisher = capture_only_publisher(tmp_path, journal, lambda: announced.append(1))
    publisher.start()
    try:

        def board(number: int, gain: float) -> Step:
            measures = {name: float(rng.normal(10.0, 0.05)) for name in MEASURES}
            measures["brightness"] = gain * float(rng.normal(120.0, 0.5))
            verdict = {"result_id": f"r{number}", "connectors": []}
            return lambda monitor: monitor.board(verdict, measures)

        publisher.apply([board(n, 1.0) for n in range(200)])  # the line's reference
        assert announced == []
        published = len(journal.pending(1000))
        dark = [board(200 + n, 0.5) for n in range(2)]
        publisher.apply(dark + [board(202 + n, 1.0) for n in range(60)])
    finally:
        publisher.stop()

    states = [json.loads(m.payload)["state"] for m in journal.pending(1000)[published:]]
    assert states == ["alarm", "ok"]
    assert journal.drift_states()["capture"]["state"] == "ok"
    assert announced == [1]
