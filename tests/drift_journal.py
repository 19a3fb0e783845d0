"""A real journal with drift states for the console and trainer tests: boards with kept crops at
chosen times, confirmations, and rows of the journal's drift tables as the drift monitor writes
them."""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import numpy as np

from edge_agent.contracts.verdict import new_result_id
from edge_agent.store.crop_store import CropStore
from edge_agent.store.journal import Journal

VERDICT_TOPIC = "plant/t/verdict"
START = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)


def at(minutes: float) -> str:
    """The journal's time `minutes` after START."""
    moment = START + dt.timedelta(minutes=minutes)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class DriftJournal:
    """`<state>/journal.sqlite` and its kept crops, filled the way the agent fills them."""

    def __init__(self, state: Path) -> None:
        self.path = state / "journal.sqlite"
        self.journal = Journal(self.path)
        self.journal.start_session()
        self.crops = CropStore(state)

    def close(self) -> None:
        self.crops.close()
        self.journal.close()

    def board(self, minutes: float, scores: dict[str, float], threshold: float = 1.0) -> str:
        """A board inspected at `at(minutes)` with these connector scores; its crops kept."""
        result_id = new_result_id()
        rows = [
            {
                "id": c,
                "evaluation": "NOK" if score >= threshold else "OK",
                "score": score,
                "threshold": threshold,
                "model": {"version": "2026-12-01.1"},
            }
            for c, score in scores.items()
        ]
        verdict = {
            "result_id": result_id,
            "part_id": f"SN-{result_id[-6:]}",
            "evaluation": "NOK" if any(r["evaluation"] == "NOK" for r in rows) else "OK",
            "created_at": at(minutes),
            "source": {"sha256": f"sha-{result_id}"},
            "connectors": rows,
        }
        self.journal.record_inspection(verdict, [], VERDICT_TOPIC)
        self.crops.keep(verdict, {c: np.full((24, 32, 3), 90, np.uint8) for c in scores})
        return result_id

    def confirm(self, result_id: str, connector: str, label: str = "OK") -> None:
        self.journal.record_confirmation(result_id, connector, label, "console:anna")

    def drift(
        self, subject: str, state: str, since: str, reason: str = "", detail: str | None = None
    ) -> None:
        """The subject's current drift state, written as the monitor writes it."""
        row = {
            "subject": subject,
            "state": state,
            "reason": reason or f"{subject} {state}",
            "since": since,
            "measure": "scores_up",
            "statistic": 1.3,
            "value": None,
            "reference": None,
            "boards": 120,
            "result_id": None,
            "model_version": None,
            "detail": detail,
        }
        self.journal.record_drift([row], [], [])

    def history(self, subject: str, rows: list[tuple[str, float, str]]) -> None:
        """Drift history rows (time, statistic, state) of a subject."""
        history = [
            {"at": when, "subject": subject, "measure": "scores_up", "statistic": value, "state": s}
            for when, value, s in rows
        ]
        self.journal.record_drift([], history, [])


def drop_drift_tables(path: Path) -> None:
    """The journal as an agent before the drift monitor left it: no drift tables."""
    with sqlite3.connect(path) as db:
        db.executescript("DROP TABLE IF EXISTS drift_states; DROP TABLE IF EXISTS drift_history;")
