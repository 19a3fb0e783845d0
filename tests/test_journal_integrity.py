"""Journal integrity on real SQLite files damaged by garbage written over pages at known
offsets: a one-line refusal at open, `edge-inspect journal check|recover`, session numbers
never reused after the newest writes were lost, filed inputs without a row found again."""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from journal_damage import damage_pages, leaf_pages, root_page
from structlog.testing import capture_logs
from test_agent_start_refusals import write_station

from edge_agent.contracts.config import RetentionSettings, StorageSettings
from edge_agent.contracts.verdict import new_result_id
from edge_agent.inputs.filing import filed_path
from edge_agent.ops.storage import StorageHealth
from edge_agent.ops.telemetry import Telemetry
from edge_agent.store.integrity import journal_problems
from edge_agent.store.integrity_monitor import IntegrityMonitor
from edge_agent.store.journal import Journal, JournalError
from edge_agent.store.journal_lock import holding_journal
from edge_agent.store.lost_writes import reinspect_lost_inputs
from edge_agent.store.retention import Retention

ROOT = Path(__file__).resolve().parents[1]
ROWS = 300


def fill(path: Path, rows: int = ROWS, session_count: int = 1) -> list[str]:
    """A journal with `rows` inspections (each with its outbox row); their result ids."""
    journal = Journal(path)
    ids = []
    for _ in range(session_count):
        journal.start_session()
        for n in range(rows // session_count):
            rid = new_result_id()
            verdict = {
                "result_id": rid,
                "evaluation": "OK",
                "source": {"sha256": f"{len(ids):064x}"},
            }
            journal.record_inspection(verdict, [], "t/verdict", source_path=f"/drop/SN{n}.png")
            ids.append(rid)
    journal.close()  # checkpointed: everything is in the main file
    return ids


def rows_of(path: Path, table: str) -> int:
    journal = Journal(path)
    try:
        return journal._query(f"SELECT COUNT(*) FROM {table}")[0][0]
    finally:
        journal.close()


def edge_inspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def station(tmp_path: Path) -> tuple[Path, Path]:
    """(config, journal path) of a station whose journal holds ROWS inspections."""
    config = write_station(tmp_path, [500, 400, 100, 50], 0)
    journal = tmp_path / "state" / "journal.sqlite"
    journal.parent.mkdir()
    fill(journal)
    return config, journal


def test_damaged_first_pages_are_refused_at_open_in_one_line_naming_the_remedy(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite"
    fill(path)
    damage_pages(path, 2, 2)  # the sessions table and sqlite_sequence

    with pytest.raises(JournalError) as refused:
        Journal(path)

    message = str(refused.value)
    assert "\n" not in message
    assert f"{path}: journal damaged" in message
    assert "edge-inspect journal recover --config" in message


def test_journal_check_says_ok_or_names_the_damage(station: tuple[Path, Path]) -> None:
    config, journal = station
    intact = edge_inspect("journal", "check", "--config", str(config))
    assert intact.returncode == 0, intact.stdout + intact.stderr
    assert intact.stdout.strip() == f"{journal}: ok"

    damage_pages(journal, root_page(journal, "inspections_source_sha256"))
    damaged = edge_inspect("journal", "check", "--config", str(config))

    assert damaged.returncode == 1
    assert f"{journal}: damaged" in damaged.stdout
    assert "edge-inspect journal recover" in damaged.stdout
    assert "Traceback" not in damaged.stdout + damaged.stderr


def test_journal_recover_copies_the_readable_rows_and_keeps_the_damaged_file(
    station: tuple[Path, Path],
) -> None:
    config, journal = station
    leaves = leaf_pages(journal, "inspections")
    damage_pages(journal, leaves[len(leaves) // 2])  # a page in the middle of the inspections
    assert journal_problems(journal)

    result = edge_inspect("journal", "recover", "--config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    kept = [p for p in journal.parent.iterdir() if ".damaged-" in p.name]
    assert len(kept) == 1 and f"kept as {kept[0]}" in result.stdout
    assert journal_problems(kept[0])  # the damaged file is kept as it was
    assert journal_problems(journal) == []
    recovered = rows_of(journal, "inspections")
    assert ROWS // 2 < recovered < ROWS  # the rows of the damaged page are lost, the rest kept
    assert rows_of(journal, "outbox") == ROWS  # the outbox's own pages were intact
    assert f"inspections: {recovered} row(s) copied" in result.stdout
    reopened = Journal(journal)
    assert reopened.start_session() == 2  # numbering goes on
    reopened.close()


def test_journal_recover_is_refused_while_an_agent_holds_the_journal(
    station: tuple[Path, Path],
) -> None:
    config, journal = station
    with holding_journal(journal, "edge-inspect run"):
        result = edge_inspect("journal", "recover", "--config", str(config))

    assert result.returncode == 1
    assert (
        "journal recover refused" in result.stdout and "in use by another process" in result.stdout
    )
    assert not [p for p in journal.parent.iterdir() if ".damaged-" in p.name]
    assert journal_problems(journal) == []


def test_sessions_lost_with_the_wal_are_never_numbered_again(tmp_path: Path) -> None:
    path = tmp_path / "live" / "journal.sqlite"
    path.parent.mkdir()
    fill(path, rows=4)  # session 1, checkpointed
    live = Journal(path)
    assert live.start_session() == 2
    live.record_inspection({"result_id": new_result_id(), "evaluation": "OK"}, [], "t/verdict")
    # A power cut with session 2 only in the -wal: the main file and the mark survive.
    survived = tmp_path / "survived"
    survived.mkdir()
    for name in ("journal.sqlite", "journal.sqlite.session-mark"):
        shutil.copy(path.parent / name, survived / name)
    live.close()

    after = Journal(survived / "journal.sqlite")
    assert after.sessions_lost() == 1
    assert after.start_session() == 3
    assert after.sessions_lost() == 0
    after.close()


def test_filed_inputs_whose_rows_were_lost_go_back_to_their_folder(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    kept_ids = fill(path, rows=3)
    drop = tmp_path / "drop"
    filed_kept = [
        filed_path(drop, "processed", rid, f"SN{n}.png") for n, rid in enumerate(kept_ids)
    ]
    lost_ids = [new_result_id(), new_result_id()]
    filed_lost = [
        filed_path(drop, "processed", lost_ids[0], "SN7.png"),
        filed_path(drop, "failed", lost_ids[1], "SN8.png"),
    ]
    for filed in filed_kept + filed_lost:
        filed.parent.mkdir(parents=True, exist_ok=True)
        filed.write_bytes(filed.name.encode())
    reason = Path(f"{filed_lost[1]}.reason.txt")
    reason.write_text("undecodable\n")

    journal = Journal(path)
    returned = reinspect_lost_inputs(journal, {"cam1": drop})
    journal.close()

    assert sorted(returned) == [drop / "SN7.png", drop / "SN8.png"]
    assert (drop / "SN7.png").read_bytes() == filed_lost[0].name.encode()
    assert not any(p.exists() for p in filed_lost) and not reason.exists()
    assert all(p.exists() for p in filed_kept)  # journaled: they stay filed


def test_journal_recover_reads_past_a_destroyed_first_page(station: tuple[Path, Path]) -> None:
    config, journal = station
    damage_pages(journal, 1)  # the file header and the table of tables
    assert journal_problems(journal) == ["file is not a database"]

    result = edge_inspect("journal", "recover", "--config", str(config))

    assert result.returncode == 0, result.stdout + result.stderr
    assert "first page was unreadable" in result.stdout
    assert journal_problems(journal) == []
    assert rows_of(journal, "inspections") == rows_of(journal, "outbox") == ROWS
    assert not [p for p in journal.parent.iterdir() if p.name.endswith(".schema-borrowed")]


def test_the_integrity_monitor_checks_at_once_when_woken_and_storage_reports_it_once(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state" / "journal.sqlite"
    path.parent.mkdir()
    fill(path)
    damage_pages(path, root_page(path, "confirmations"))
    storage = StorageHealth(path.parent, StorageSettings(min_free_mb=0, crops_min_free_mb=0),
                            Telemetry())  # fmt: skip
    reports: queue.Queue[str | None] = queue.Queue()

    def report(damage: str | None) -> None:
        storage.journal_checked(damage)
        reports.put(damage)

    monitor = IntegrityMonitor(path, 3600, report)  # the schedule alone: an hour away
    monitor.start()
    with capture_logs() as logs:
        monitor.check_soon()
        first = reports.get(timeout=60)
        monitor.check_soon()
        reports.get(timeout=60)
    monitor.stop()

    assert first is not None and f"{path}: journal damaged" in first
    state = storage.report()
    assert (
        state["ok"] is False and state["journal"] == "damaged" and state["journal_error"] == first
    )
    assert [entry["event"] for entry in logs].count("journal_damaged") == 1


def test_a_retention_pass_failing_on_a_damaged_page_asks_for_an_integrity_check(
    tmp_path: Path,
) -> None:
    path = tmp_path / "journal.sqlite"
    fill(path)
    leaves = leaf_pages(path, "inspections")
    damage_pages(path, leaves[len(leaves) // 2])
    asked = threading.Event()
    retention = Retention(RetentionSettings(), path, {}, None, Telemetry(), asked.set)

    retention.start()
    try:
        assert asked.wait(60)  # the pass failed on the damaged page and said so
    finally:
        retention.stop()
