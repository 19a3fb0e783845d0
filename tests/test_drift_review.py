"""The review queue while a connector's drift alarm is on (a real journal, read as the console
reads it): that connector's unconfirmed crops since the alarm come first, marked drift."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from drift_journal import DriftJournal, at, drop_drift_tables

from edge_agent.console.journal_reader import JournalReader

HEAD = 4


@pytest.fixture
def line(tmp_path: Path) -> Iterator[DriftJournal]:
    filled = DriftJournal(tmp_path / "state")
    yield filled
    filled.close()


def keys(reader: JournalReader) -> list[tuple[str, str, bool]]:
    return [(i.result_id, i.connector, i.drift) for i in reader.review_queue().items]


def test_an_alarmed_connectors_crops_since_the_alarm_come_first_marked_drift(
    line: DriftJournal,
) -> None:
    before = line.board(0, {"J1": 0.2, "J3": 0.3})  # before the alarm: not in the head
    nok = line.board(5, {"J1": 1.6, "J3": 0.3})  # J1 NOK: reviewed as always
    since = at(10)
    after = [line.board(10 + i, {"J1": 0.2, "J3": 0.4}) for i in range(6)]
    line.confirm(after[-1], "J3")  # confirmed: no longer to review
    line.drift("J3", "alarm", since, "J3 scores: median 0.40, reference 0.25, 60 boards")
    line.drift("capture", "warning", since)  # the capture is no connector: no head of its own

    queue = keys(JournalReader(line.path, drift_head=HEAD))

    head = [(rid, "J3", True) for rid in reversed(after[:-1])][:HEAD]
    assert queue[:HEAD] == head  # the newest unconfirmed crops since the alarm, newest first
    assert queue[HEAD:] == [(nok, "J1", False)]  # then the usual queue, without repeats
    assert before not in {rid for rid, _, _ in queue}
    assert JournalReader(line.path, drift_head=HEAD).review_queue().total == HEAD + 1


def test_a_borderline_crop_of_the_alarmed_connector_is_listed_once_in_the_head(
    line: DriftJournal,
) -> None:
    line.drift("J3", "alarm", at(0))
    borderline = line.board(1, {"J1": 0.2, "J3": 0.9})  # 0.9 of the threshold: reviewed anyway

    queue = keys(JournalReader(line.path, drift_head=HEAD))

    assert queue == [(borderline, "J3", True)]


def test_warnings_ok_states_and_a_head_of_zero_change_nothing(line: DriftJournal) -> None:
    nok = line.board(5, {"J1": 1.6, "J3": 0.3})
    line.board(6, {"J1": 0.2, "J3": 0.3})
    line.drift("J1", "warning", at(0))
    line.drift("J3", "ok", at(0))
    assert keys(JournalReader(line.path, drift_head=HEAD)) == [(nok, "J1", False)]

    line.drift("J3", "alarm", at(0))
    assert keys(JournalReader(line.path, drift_head=0)) == [(nok, "J1", False)]


def test_an_older_journal_without_drift_tables_reads_as_no_drift(line: DriftJournal) -> None:
    nok = line.board(5, {"J1": 1.6, "J3": 0.3})
    drop_drift_tables(line.path)
    reader = JournalReader(line.path, drift_head=HEAD)

    assert reader.drift_states() == {} and reader.drift_alarms() == {}
    assert reader.drift_history("J3") == [] and reader.drift_warning_level("J3") is None
    assert keys(reader) == [(nok, "J1", False)]


def test_the_alarm_start_is_compared_in_the_journals_time_format(line: DriftJournal) -> None:
    line.board(0, {"J3": 0.3})
    later = line.board(30, {"J3": 0.3})
    line.drift("J3", "alarm", "2026-12-06T08:10:00+00:00")  # an offset instead of a Z

    reader = JournalReader(line.path, drift_head=HEAD)

    assert reader.drift_alarms() == {"J3": at(10)}
    assert keys(reader) == [(later, "J3", True)]
    assert reader.confirmed_since("J3", at(10)) == 0
    line.confirm(later, "J3", "KO")
    assert reader.confirmed_since("J3", at(10)) == 1
