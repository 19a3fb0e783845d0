"""Taking a label back: the journal's withdrawal of the latest confirmation (a real SQLite file)."""

from __future__ import annotations

import sqlite3

import numpy as np
import pytest

from edge_agent.store.crop_store import CropStore
from edge_agent.store.journal import Journal

VERDICT_TOPIC = "plant/line3/aoi2/verdict"


def verdict(result_id: str) -> dict:
    return {
        "result_id": result_id,
        "part_id": f"SN-{result_id}",
        "evaluation": "NOK",
        "source": {"sha256": f"sha-{result_id}"},
        "connectors": [{"id": "J1", "evaluation": "NOK"}, {"id": "J2", "evaluation": "OK"}],
    }


def rows(journal: Journal, table: str) -> list[tuple]:
    columns = "connector, label, confirmed_by" + (
        ", withdrawn_by" if table == "withdrawn_confirmations" else ""
    )
    with sqlite3.connect(journal.path) as db:
        return db.execute(f"SELECT {columns} FROM {table} ORDER BY id").fetchall()


def test_the_latest_label_is_taken_back_and_kept_for_the_audit(journal: Journal) -> None:
    journal.record_inspection(verdict("r1"), [], VERDICT_TOPIC)
    journal.record_confirmation("r1", "J1", "KO", "mes")
    journal.record_confirmation("r1", "J1", "OK", "console:anna")
    journal.record_confirmation("r1", "J2", "OK", "console:anna")

    journal.withdraw_confirmations("r1", ["J1", "J2"], "OK", "console:anna", "console:anna")

    assert rows(journal, "confirmations") == [("J1", "KO", "mes")]
    assert rows(journal, "withdrawn_confirmations") == [
        ("J1", "OK", "console:anna", "console:anna"),
        ("J2", "OK", "console:anna", "console:anna"),
    ]


def test_a_label_given_since_by_someone_else_is_not_taken_back(journal: Journal) -> None:
    journal.record_inspection(verdict("r1"), [], VERDICT_TOPIC)
    journal.record_confirmation("r1", "J1", "OK", "console:anna")
    journal.record_confirmation("r1", "J2", "OK", "console:anna")
    journal.record_confirmation("r1", "J2", "KO", "mes")

    with pytest.raises(ValueError, match="J2 of r1 was labelled KO by mes since"):
        journal.withdraw_confirmations("r1", ["J1", "J2"], "OK", "console:anna", "console:anna")
    with pytest.raises(ValueError, match="no label to take back"):
        journal.withdraw_confirmations("r2", ["J1"], "OK", "console:anna", "console:anna")

    assert len(rows(journal, "confirmations")) == 3  # all or none: J1 kept its label too
    assert rows(journal, "withdrawn_confirmations") == []


def test_the_retrain_no_longer_sees_a_label_taken_back(journal: Journal) -> None:
    store = CropStore(journal.path.parent)
    try:
        journal.record_inspection(verdict("r1"), [], VERDICT_TOPIC)
        store.keep(verdict("r1"), {"J1": np.zeros((8, 8, 3), np.uint8)})
        journal.record_confirmation("r1", "J1", "KO", "console:anna")
        assert [c.label for c in store.labelled("J1")] == ["KO"]

        journal.withdraw_confirmations("r1", ["J1"], "KO", "console:anna", "console:anna")

        assert store.labelled("J1") == []
    finally:
        store.close()
