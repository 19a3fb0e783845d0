"""Retention: handled inputs, journal rows and crops pruned by age and size, in batches."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import sqlite3
from pathlib import Path

import numpy as np

from edge_agent.contracts.config import RetentionSettings
from edge_agent.inputs.drop_folder import DropFile
from edge_agent.inputs.filed_retention import FiledPruner
from edge_agent.inputs.filing import Outcome, finish
from edge_agent.ops.telemetry import Telemetry
from edge_agent.store.crop_store import CropStore
from edge_agent.store.journal import Journal, OutboxMessage
from edge_agent.store.journal_retention import InspectionPruner
from edge_agent.store.retention import Retention

NOW = dt.datetime(2026, 9, 30, 12, 0, tzinfo=dt.UTC)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
MB = 1_000_000


def ulid_at(moment: dt.datetime) -> str:
    """A result id made at `moment` (as `new_result_id` makes them, at another time)."""
    value = int(moment.timestamp() * 1000) << 80 | secrets.randbits(80)
    return "".join(CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def iso(moment: dt.datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def file_input(
    folder: Path, name: str, age: dt.timedelta, outcome: Outcome = "processed", size: int = 1000
) -> Path:
    """An input dropped into `folder` and filed by the agent `age` before NOW."""
    folder.mkdir(parents=True, exist_ok=True)
    data = secrets.token_bytes(size)
    (folder / name).write_bytes(data)
    drop = DropFile("cam1", folder / name, hashlib.sha256(data).hexdigest(), data)
    reason = "decode: not an image" if outcome == "failed" else None
    return finish(drop, outcome, ulid_at(NOW - age), reason)


def remaining(folder: Path) -> list[str]:
    """Original names of the inputs still filed below `folder` (reason files left out)."""
    return sorted(
        p.name.partition("_")[2]
        for p in folder.rglob("*")
        if p.is_file() and not p.name.endswith(".reason.txt")
    )


def test_filed_inputs_past_the_age_go_and_fresh_ones_stay(tmp_path: Path) -> None:
    drop = tmp_path / "cam1"
    for days in (40, 20, 15, 13, 1):
        file_input(drop, f"SN{days}d.png", dt.timedelta(days=days))
    pruner = FiledPruner(drop / "processed", max_age_days=14, max_bytes=10**9)

    removed = list(pruner.batches(limit=100, now=NOW))

    assert sum(r.items for r in removed) == 3
    assert sum(r.bytes for r in removed) == 3000
    assert remaining(drop / "processed") == ["SN13d.png", "SN1d.png"]
    days_left = sorted(p.name for p in (drop / "processed").iterdir())
    assert days_left == [iso(NOW - dt.timedelta(days=d))[:10] for d in (13, 1)]  # empty went


def test_the_size_cap_removes_the_oldest_first_reason_files_included(tmp_path: Path) -> None:
    drop = tmp_path / "cam1"
    for minutes in range(10, 0, -1):  # SN10 is the oldest
        file_input(drop, f"SN{minutes}.png", dt.timedelta(minutes=minutes), "failed")
    notes = sum(p.stat().st_size for p in (drop / "failed").rglob("*.reason.txt"))
    pruner = FiledPruner(drop / "failed", max_age_days=90, max_bytes=5000 + notes // 2)

    list(pruner.batches(limit=100, now=NOW))

    assert remaining(drop / "failed") == sorted(f"SN{m}.png" for m in range(1, 6))
    assert len(list((drop / "failed").rglob("*.reason.txt"))) == 5
    assert pruner.usage <= 5000 + notes // 2
    assert pruner.usage == sum(
        p.stat().st_size for p in (drop / "failed").rglob("*") if p.is_file()
    )


def test_inputs_filed_flat_by_an_older_version_go_by_their_modification_time(
    tmp_path: Path,
) -> None:
    legacy = tmp_path / "cam1" / "duplicates"
    legacy.mkdir(parents=True)
    for name, days in (("old.png", 30), ("recent.png", 2)):
        path = legacy / name
        path.write_bytes(b"x" * 100)
        stamp = (NOW - dt.timedelta(days=days)).timestamp()
        os.utime(path, (stamp, stamp))
    pruner = FiledPruner(legacy, max_age_days=14, max_bytes=10**9)

    list(pruner.batches(limit=100, now=NOW))

    assert sorted(p.name for p in legacy.iterdir()) == ["recent.png"]


def test_a_large_backlog_of_files_is_pruned_in_bounded_batches(tmp_path: Path) -> None:
    drop = tmp_path / "cam1"
    for n in range(1200):
        file_input(drop, "SN.png", dt.timedelta(days=30, seconds=n), size=10)
    file_input(drop, "SN.png", dt.timedelta(days=1), size=10)
    pruner = FiledPruner(drop / "processed", max_age_days=14, max_bytes=10**9)

    batches = [r.items for r in pruner.batches(limit=250, now=NOW)]

    assert max(batches) <= 250 and len(batches) >= 5
    assert sum(batches) == 1200
    assert len(remaining(drop / "processed")) == 1


# -- the journal ------------------------------------------------------------------------------


def journal_board(journal: Journal, result_id: str, age: dt.timedelta, sha: str) -> None:
    """A board journaled `age` before NOW, its verdict and one heatmap in the outbox."""
    verdict = {
        "result_id": result_id,
        "evaluation": "OK",
        "created_at": iso(NOW - age),
        "source": {"sha256": sha},
        "connectors": [{"id": "J1", "evaluation": "OK"}],
    }
    heatmap = OutboxMessage(f"p/heatmap/{result_id}/J1", b"png", qos=0)
    journal.record_inspection(verdict, [heatmap], "p/verdict")


def deliver_all_but(journal: Journal, keep: set[str]) -> None:
    """The broker acknowledged every message except those of the boards in `keep`."""
    waiting = journal.pending(10_000)
    delivered = [
        m.id
        for m in waiting
        if not any(rid.encode() in m.payload + m.topic.encode() for rid in keep)
    ]
    journal.acknowledge_many(delivered)


def rows(journal: Journal, table: str) -> int:
    with sqlite3.connect(journal.path) as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_old_inspections_go_unless_undelivered_or_their_crops_are_kept(
    tmp_path: Path, journal: Journal
) -> None:
    for n, days in enumerate((200, 150, 120, 100, 10)):
        journal_board(journal, f"R{n}", dt.timedelta(days=days), sha=f"s{n}")
    journal.record_confirmation("R0", "J1", "OK", "mes")  # R0 goes with its confirmation
    journal.record_confirmation("R2", "J1", "KO", "mes")  # R2's crop is kept: it stays
    deliver_all_but(journal, {"R1"})  # R1's verdict still waits for the broker
    store = CropStore(tmp_path)
    store.keep({"result_id": "R2", "created_at": iso(NOW)}, {"J1": np.zeros((4, 4, 3), np.uint8)})
    pruner = InspectionPruner(journal.path, max_age_days=90, max_rows=10**6)

    removed = sum(r.items for r in pruner.batches(limit=100, now=NOW))

    kept = [r for r in ("R0", "R1", "R2", "R3", "R4") if journal.inspection(r) is not None]
    assert (removed, kept) == (2, ["R1", "R2", "R4"])
    assert [c["label"] for c in journal.inspection("R2")["confirmations"]] == ["KO"]
    assert rows(journal, "confirmations") == 1
    assert journal.first_of_content("s0") is None and journal.first_of_content("s3") is None
    assert journal.first_of_content("s1") == "R1"
    assert pruner.rows == 3
    store.close()
    pruner.close()


def test_the_row_cap_removes_the_oldest_inspections_first(journal: Journal) -> None:
    for n in range(10):
        journal_board(journal, f"R{n}", dt.timedelta(days=10, minutes=-n), sha=f"s{n}")
    journal_board(journal, "NEW", dt.timedelta(minutes=5), sha="new")  # in its first hour
    deliver_all_but(journal, set())
    pruner = InspectionPruner(journal.path, max_age_days=90, max_rows=4)

    list(pruner.batches(limit=3, now=NOW))

    kept = [r for r in [f"R{n}" for n in range(10)] + ["NEW"] if journal.inspection(r)]
    assert kept == ["R7", "R8", "R9", "NEW"]
    pruner.close()


def test_a_large_backlog_of_inspections_is_pruned_one_bounded_transaction_at_a_time(
    journal: Journal,
) -> None:
    for n in range(1500):
        journal_board(journal, f"R{n:04d}", dt.timedelta(days=200, seconds=-n), sha=f"s{n}")
    journal_board(journal, "NEW", dt.timedelta(days=1), sha="new")
    deliver_all_but(journal, set())
    pruner = InspectionPruner(journal.path, max_age_days=90, max_rows=10**6)

    batches = [r.items for r in pruner.batches(limit=400, now=NOW)]

    assert max(batches) <= 400 and sum(batches) == 1500
    assert rows(journal, "inspections") == 1 and journal.inspection("NEW") is not None
    assert rows(journal, "contents") == 1
    pruner.close()


# -- the retention thread -------------------------------------------------------------------


def test_one_pass_prunes_inputs_journal_and_crops_and_counts_it_in_the_metrics(
    tmp_path: Path, journal: Journal
) -> None:
    drop, inbox = tmp_path / "drop" / "cam1", tmp_path / "state" / "inbox" / "cam1"
    file_input(drop, "SN1.png", dt.timedelta(days=20))  # past processed/'s 14 days
    file_input(drop, "SN2.png", dt.timedelta(days=20), "failed")  # failed/ keeps it 90 days
    file_input(drop, "SN3.png", dt.timedelta(days=100), "failed")
    file_input(inbox, "SN4@x", dt.timedelta(days=20))
    file_input(inbox, "SN5@x", dt.timedelta(days=1))
    journal_board(journal, "R-old", dt.timedelta(days=100), sha="old")
    journal_board(journal, "R-new", dt.timedelta(days=1), sha="new")
    deliver_all_but(journal, set())
    store = CropStore(tmp_path)
    store.keep(
        {"result_id": "R-new", "created_at": iso(NOW - dt.timedelta(days=40))},
        {"J1": np.zeros((4, 4, 3), np.uint8)},
    )
    telemetry = Telemetry()
    retention = Retention(
        RetentionSettings(),
        journal.path,
        {"cam1": drop, "mqtt:cam1": inbox},
        store,
        telemetry,
    )

    removed = retention.run_pass(now=NOW)
    retention.stop()

    assert {kind: r.items for kind, r in removed.items()} == {
        "crops": 1,
        "processed": 2,
        "failed": 1,
        "duplicates": 0,
        "inspections": 1,
    }
    assert remaining(drop / "processed") == []
    assert remaining(drop / "failed") == ["SN2.png"]
    assert remaining(inbox / "processed") == ["SN5@x"]
    assert journal.inspection("R-old") is None and journal.inspection("R-new") is not None
    assert store.count() == 0

    def sample(name: str, **labels: str) -> float | None:
        return telemetry.registry.get_sample_value(f"edge_inspect_{name}", labels)

    assert sample("retention_removed_total", kind="processed") == 2
    assert sample("retention_removed_total", kind="inspections") == 1
    assert sample("retention_freed_bytes_total", kind="processed") == 2000
    assert sample("retained_bytes", kind="processed") == 1000
    assert sample("journal_inspections") == 1
    store.close()
