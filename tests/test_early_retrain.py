"""Early retraining on a drift alarm, decided from a real journal: which connectors and why, one
early run per alarm, recorded by the job under its lock."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from drift_journal import DriftJournal, at
from mqtt_broker import MosquittoBroker
from retrain_station import cli_process
from structlog.testing import capture_logs

from trainer.retrain.early import drift_alarm, early_retrains
from trainer.retrain.job import RetrainJob
from trainer.retrain.runs import read_early_runs, record_early_run
from trainer.settings import TrainerConfig, load_config

NEEDED = 3


def station(tmp_path: Path, drift: str = "", mqtt: str = "enabled = false\n") -> TrainerConfig:
    """J1, J3 and a disabled J5; the schedule far away (1 January, 03:00)."""
    config = tmp_path / "config.toml"
    config.write_text(
        "[connectors.J1]\nbox = [0, 0, 32, 24]\n[connectors.J3]\nbox = [40, 0, 32, 24]\n"
        "[connectors.J5]\nbox = [80, 0, 32, 24]\nenabled = false\n"
        f"[drift]\nretrain_after_confirmed = {NEEDED}\n{drift}"
        '[retrain]\nschedule = "0 3 1 1 *"\nrecalibrate = false\nnice = 0\n'
        f"[mqtt]\n{mqtt}",
        encoding="utf-8",
    )
    return load_config(config)


@pytest.fixture
def line(tmp_path: Path) -> Iterator[DriftJournal]:
    filled = DriftJournal(tmp_path / "state")
    yield filled
    filled.close()


def confirmed_boards(line: DriftJournal, minutes: list[float], connector: str = "J3") -> None:
    for minute in minutes:
        line.confirm(line.board(minute, {"J1": 0.2, "J3": 0.3, "J5": 0.2}), connector)


def test_an_alarmed_connector_is_retrained_early_once_enough_crops_since_are_confirmed(
    tmp_path: Path, line: DriftJournal
) -> None:
    config = station(tmp_path)
    line.drift("J3", "alarm", at(10), "J3 scores: median 0.81, reference 0.55, 120 boards")
    confirmed_boards(line, [1, 2, 3, 4])  # confirmed, but inspected before the alarm
    confirmed_boards(line, [11, 12])
    line.board(13, {"J1": 0.2, "J3": 0.3})  # since the alarm, not confirmed
    assert early_retrains(config) == []

    confirmed_boards(line, [14])
    due = early_retrains(config)

    assert [(e.connector, e.since, e.confirmed) for e in due] == [("J3", at(10), NEEDED)]
    assert due[0].reason == (
        f"drift alarm since {at(10)}: 3 of its crops inspected since then are confirmed "
        f"(3 ask for an early retrain)"
    )


def test_warnings_the_capture_disabled_connectors_and_drift_off_ask_for_nothing(
    tmp_path: Path, line: DriftJournal
) -> None:
    confirmed_boards(line, [11, 12, 13], "J1")
    confirmed_boards(line, [14, 15, 16], "J5")
    line.drift("J1", "warning", at(10))
    line.drift("J5", "alarm", at(10))  # not enabled: the trainer does not train it
    line.drift("capture", "alarm", at(10))
    assert early_retrains(station(tmp_path)) == []

    line.drift("J1", "alarm", at(10))
    assert [e.connector for e in early_retrains(station(tmp_path))] == ["J1"]
    assert early_retrains(station(tmp_path, "enabled = false\n")) == []


def test_one_early_run_per_alarm_and_a_new_alarm_asks_again(
    tmp_path: Path, line: DriftJournal
) -> None:
    config = station(tmp_path)
    line.drift("J3", "alarm", at(10))
    confirmed_boards(line, [11, 12, 13, 31, 32, 33])
    record_early_run(config, "J3", at(10), "run-1")
    assert early_retrains(config) == []

    line.drift("J3", "alarm", at(30))  # cleared and raised again: a new alarm

    assert [(e.connector, e.since) for e in early_retrains(config)] == [("J3", at(30))]


def test_the_job_retrains_only_what_drift_asks_for_and_records_it_under_its_lock(
    tmp_path: Path, line: DriftJournal
) -> None:
    config = station(tmp_path)
    job = RetrainJob(config, trigger="drift", announce=lambda _status: None)
    assert job.run(early=True).results == []  # no alarm: nothing run

    line.drift("J3", "alarm", at(10))
    confirmed_boards(line, [11, 12, 13])
    with capture_logs() as logs:
        report = job.run(early=True)

    # J3 alone is taken; its three confirmed crops hold the same pixels (one crop), too little
    # to train on, so the run ends before training, as any run with too little data does.
    assert [(r.connector, r.outcome) for r in report.results] == [("J3", "failed")]
    assert "too little data" in report.results[0].reason
    early = [(e["connector"], e["reason"]) for e in logs if e["event"] == "retrain_early"]
    assert early == [("J3", f"drift alarm since {at(10)}: 3 of its crops inspected since then "
                     "are confirmed (3 ask for an early retrain)")]  # fmt: skip
    assert read_early_runs(config)["J3"] == {
        "since": at(10),
        "run_id": report.run_id,
        "at": read_early_runs(config)["J3"]["at"],
    }
    assert early_retrains(config) == []
    assert job.run(early=True).results == []  # this alarm had its early run


def test_recalibration_is_told_of_an_alarm_and_only_of_an_alarm(
    tmp_path: Path, line: DriftJournal
) -> None:
    config = station(tmp_path)
    line.drift("J1", "warning", at(10), "J1 scores: median 0.70, reference 0.55, 80 boards")
    line.drift("J3", "alarm", at(10), "J3 scores: median 0.81, reference 0.55, 120 boards")

    assert drift_alarm(config, "J1") is None
    assert drift_alarm(config, "J3") == "J3 scores: median 0.81, reference 0.55, 120 boards"


@pytest.mark.slow
def test_the_trainer_service_runs_the_early_retrain_a_drift_alarm_asks_for(
    tmp_path: Path, line: DriftJournal, broker: MosquittoBroker, recorder
) -> None:
    config = station(tmp_path, mqtt='prefix = "plant/t"\n')
    line.drift("J3", "alarm", at(10), "J3 scores: median 0.81, reference 0.55, 120 boards")
    confirmed_boards(line, [11, 12, 13])
    watch = recorder("plant/t/trainer/status")
    log = tmp_path / "trainer.log"

    service = cli_process(
        "trainer", "--config", str(tmp_path / "config.toml"), port=broker.port, log=log
    )
    try:
        watch.wait_for(lambda ms: any(m.json()["state"] == "idle" for m in ms), timeout=120)
    finally:
        service.send_signal(signal.SIGTERM)
        code = service.wait(60)

    status = [m.json() for m in watch.messages if m.json()["state"] == "idle"][-1]
    assert status["trigger"] == "drift"  # not the schedule (1 January, 03:00)
    assert list(status["connectors"]) == ["J3"]
    assert read_early_runs(config)["J3"]["run_id"] == status["run_id"]
    written = log.read_text()
    assert "retrain_early" in written and "drift alarm since" in written
    assert code == 0, written[-2000:]
