"""The journal: sessions, contiguous seq, atomic recording, a durable outbox, confirmations."""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path

import pytest

from edge_agent.store.journal import (
    SCHEMA_VERSION,
    Journal,
    JournalError,
    OutboxMessage,
    immediate_transaction,
)

VERDICT_TOPIC = "plant/line3/aoi2/verdict"


def make_verdict(result_id: str, sha: str = "ab12", evaluation: str = "OK") -> dict:
    return {
        "schema": "inspect.verdict/1",
        "result_id": result_id,
        "part_id": f"SN-{result_id}",
        "camera": "cam1",
        "source": {"uri": f"file:///srv/drop/cam1/{result_id}.png", "sha256": sha},
        "evaluation": evaluation,
        "historical": False,
        "connectors": [{"id": "J1", "evaluation": evaluation}, {"id": "J2", "evaluation": "OK"}],
    }


@pytest.fixture
def journal(tmp_path: Path):
    opened = Journal(tmp_path / "state" / "journal.sqlite")
    opened.start_session()
    yield opened
    opened.close()


def test_sessions_keep_counting_across_restarts(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    first = Journal(path)
    sessions = [first.start_session(), first.start_session()]
    first.close()
    second = Journal(path)
    sessions.append(second.start_session())
    second.close()
    assert sessions == [1, 2, 3]


def test_a_file_that_is_no_journal_is_refused_by_name(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"not a database at all" * 100)
    with pytest.raises(JournalError, match=r"journal\.sqlite"):
        Journal(path)


def test_file_is_in_wal_mode(journal: Journal) -> None:
    with sqlite3.connect(journal.path) as reader:
        assert reader.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_seq_is_contiguous_under_two_writer_threads(journal: Journal) -> None:
    per_thread = 150

    def write(worker: int) -> None:
        for n in range(per_thread):
            journal.record_inspection(make_verdict(f"w{worker}-{n}"), [], VERDICT_TOPIC)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    rows = journal.pending(10_000)
    seqs = [json.loads(row.payload)["seq"] for row in rows]
    assert seqs == list(range(1, 2 * per_thread + 1))


def test_verdict_and_extra_messages_are_queued_together(journal: Journal) -> None:
    verdict = make_verdict("r1", evaluation="NOK")
    heatmap = OutboxMessage("plant/line3/aoi2/heatmap/r1/J1", b"\x89PNG...", qos=0)
    seq = journal.record_inspection(verdict, [heatmap], VERDICT_TOPIC, source_path="/d/r1.png")

    assert (verdict["session"], verdict["seq"]) == (1, seq)
    verdict_row, heatmap_row = journal.pending(10)
    assert verdict_row.topic == VERDICT_TOPIC
    assert (verdict_row.qos, verdict_row.is_json, verdict_row.retain) == (1, True, False)
    assert json.loads(verdict_row.payload) == verdict
    assert (heatmap_row.topic, heatmap_row.payload, heatmap_row.qos) == (
        heatmap.topic,
        heatmap.payload,
        0,
    )
    stored = journal.inspection("r1")
    assert stored is not None
    assert (stored["seq"], stored["evaluation"], stored["source_path"]) == (seq, "NOK", "/d/r1.png")
    assert stored["verdict"] == verdict


def test_failed_recording_leaves_no_trace_and_no_seq_gap(journal: Journal) -> None:
    journal.record_inspection(make_verdict("r1"), [], VERDICT_TOPIC)
    with pytest.raises(sqlite3.IntegrityError):
        journal.record_inspection(make_verdict("r1"), [], VERDICT_TOPIC)
    with pytest.raises(ValueError, match="topic"):
        journal.record_inspection(make_verdict("r2"), [], verdict_topic="")

    assert journal.record_inspection(make_verdict("r3"), [], VERDICT_TOPIC) == 2
    assert journal.outbox_depth() == 2
    assert journal.inspection("r2") is None


def test_recording_needs_a_session_and_a_complete_verdict(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    with pytest.raises(RuntimeError, match="start_session"):
        journal.record_inspection(make_verdict("r1"), [], VERDICT_TOPIC)
    journal.start_session()
    with pytest.raises(ValueError, match="result_id"):
        journal.record_inspection({"evaluation": "OK"}, [], VERDICT_TOPIC)
    journal.close()


def test_outbox_survives_reopen_in_order_with_its_session(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    before = Journal(path)
    before.start_session()
    for n in range(5):
        before.record_inspection(make_verdict(f"r{n}"), [], VERDICT_TOPIC)
    before.acknowledge(before.pending(1)[0].id)
    before.close()

    after = Journal(path)
    assert after.start_session() == 2
    rows = after.pending(100)
    after.close()
    assert [json.loads(row.payload)["result_id"] for row in rows] == ["r1", "r2", "r3", "r4"]
    assert {row.session for row in rows} == {1}


def test_pending_pages_after_a_cursor_and_counts_attempts(journal: Journal) -> None:
    for n in range(4):
        journal.record_inspection(make_verdict(f"r{n}"), [], VERDICT_TOPIC)
    first = journal.pending(2)
    journal.count_attempts([row.id for row in first])
    rest = journal.pending(10, after=first[-1].id)

    assert [row.id for row in first + rest] == sorted(row.id for row in first + rest)
    assert len(first + rest) == 4
    assert [row.attempts for row in journal.pending(10)] == [1, 1, 0, 0]
    journal.acknowledge_many(row.id for row in first)
    assert journal.outbox_depth() == 2
    assert journal.last_outbox_id() == rest[-1].id


def test_a_repeat_of_content_names_the_first_verdict(journal: Journal) -> None:
    first = make_verdict("r1", sha="aa")
    other = make_verdict("r2", sha="bb")
    repeat = make_verdict("r3", sha="aa")
    for verdict, path in ((first, "/a"), (other, None), (repeat, "/c")):
        journal.record_inspection(verdict, [], VERDICT_TOPIC, source_path=path)

    assert "duplicate_of" not in first and "duplicate_of" not in other
    assert repeat["duplicate_of"] == "r1"
    published = [json.loads(row.payload) for row in journal.pending(10)]
    assert [v.get("duplicate_of") for v in published] == [None, None, "r1"]
    assert journal.first_of_content("aa") == "r1"
    assert journal.find_from_path("aa", "/a") == ("r1", "OK")
    assert journal.find_from_path("aa", "/c") == ("r3", "OK")
    assert journal.find_from_path("aa", "/b") is None


def test_of_copies_committed_at_once_from_two_connections_exactly_one_is_first(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite"
    journals = [Journal(path), Journal(path)]
    for opened in journals:
        opened.start_session()
    verdicts = {n: [make_verdict(f"t{n}-{i}", sha=f"c{i}") for i in range(40)] for n in (0, 1)}
    barrier = threading.Barrier(2)

    def record(n: int) -> None:
        barrier.wait()
        for verdict in verdicts[n]:
            journals[n].record_inspection(verdict, [], VERDICT_TOPIC)

    threads = [threading.Thread(target=record, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for i in range(40):
        pair = [verdicts[0][i], verdicts[1][i]]
        firsts = [v for v in pair if "duplicate_of" not in v]
        assert len(firsts) == 1, pair
        assert [v["duplicate_of"] for v in pair if v is not firsts[0]] == [firsts[0]["result_id"]]
    for opened in journals:
        opened.close()


def test_a_schema_1_journal_is_migrated_with_its_first_inspections_as_claims(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite"
    old = Journal(path)
    old.start_session()
    old.record_inspection(make_verdict("r1", sha="aa"), [], VERDICT_TOPIC)
    old.close()
    with sqlite3.connect(path) as db:  # as schema 1 left it: no claims table
        db.execute("DROP TABLE contents")
        db.execute("PRAGMA user_version=1")

    journal = Journal(path)
    journal.start_session()
    repeat = make_verdict("r2", sha="aa")
    journal.record_inspection(repeat, [], VERDICT_TOPIC)

    assert repeat["duplicate_of"] == "r1"
    assert journal.inspection("r1") is not None
    journal.close()


def test_a_schema_2_journal_ties_its_waiting_messages_to_their_inspections(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite"
    old = Journal(path)
    old.start_session()
    heatmap = OutboxMessage("plant/line3/aoi2/heatmap/r1/J1", b"png", qos=0)
    old.record_inspection(make_verdict("r1"), [heatmap], VERDICT_TOPIC)
    old.close()
    with sqlite3.connect(path) as db:  # as schema 2 left it: outbox rows name no inspection
        db.execute("DROP INDEX outbox_result_id")
        db.execute("ALTER TABLE outbox DROP COLUMN result_id")
        db.execute("PRAGMA user_version=2")

    Journal(path).close()

    with sqlite3.connect(path) as db:
        tied = db.execute("SELECT topic, result_id FROM outbox ORDER BY id").fetchall()
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert tied == [(VERDICT_TOPIC, "r1"), ("plant/line3/aoi2/heatmap/r1/J1", "r1")]


def test_confirmations_are_validated_and_kept(journal: Journal) -> None:
    journal.record_inspection(make_verdict("r1"), [], VERDICT_TOPIC)
    journal.record_confirmation("r1", "J1", "KO", "mes", at="2026-09-01T10:15:00.123Z")
    journal.record_confirmation("r1", "J2", "OK", "operator 7")

    bad = [
        (("r1", "J1", "NOK", "mes"), "label"),
        (("r1", "J9", "OK", "mes"), "J9"),
        (("nope", "J1", "OK", "mes"), "unknown result_id"),
        (("r1", "../J1", "OK", "mes"), "connector"),
        (("r1", "J1", "OK", " "), "by"),
    ]
    for args, message in bad:
        with pytest.raises(ValueError, match=message):
            journal.record_confirmation(*args)
    with pytest.raises(ValueError, match="ISO"):
        journal.record_confirmation("r1", "J1", "OK", "mes", at="yesterday")

    stored = journal.inspection("r1")
    assert stored is not None
    assert [(c["connector"], c["label"], c["by"]) for c in stored["confirmations"]] == [
        ("J1", "KO", "mes"),
        ("J2", "OK", "operator 7"),
    ]


def test_a_commit_that_fails_ends_the_transaction(tmp_path: Path) -> None:
    """A deferred foreign key is checked at COMMIT: the COMMIT fails, the transaction ends."""
    db = sqlite3.connect(tmp_path / "fk.sqlite", isolation_level=None)
    db.execute("PRAGMA foreign_keys=ON")
    db.execute("CREATE TABLE parent (id INTEGER PRIMARY KEY)")
    db.execute(
        "CREATE TABLE child (parent INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)"
    )
    lock = threading.Lock()

    with (
        pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"),
        immediate_transaction(db, lock),
    ):
        db.execute("INSERT INTO child (parent) VALUES (7)")  # accepted until COMMIT

    assert not db.in_transaction
    assert not lock.locked()
    with immediate_transaction(db, lock):  # the next transaction starts and commits
        db.execute("INSERT INTO parent (id) VALUES (7)")
        db.execute("INSERT INTO child (parent) VALUES (7)")
    assert db.execute("SELECT COUNT(*) FROM child").fetchone()[0] == 1
    db.close()
