"""`edge-inspect trainer`: the cron schedule, and a run missed while it was down caught up."""

from __future__ import annotations

import datetime as dt
import json
import signal
import threading
from pathlib import Path

from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger
from mqtt_broker import MosquittoBroker
from retrain_station import cli_process

from trainer.commands.trainer_service import _Runner, missed_run, stopper

UTC = dt.UTC
NIGHTLY = CronTrigger.from_crontab("0 2 * * *", timezone=UTC)


def at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 9, day, hour, minute, tzinfo=UTC)


def test_a_missed_nightly_run_is_caught_up_only_within_the_grace() -> None:
    grace = 6 * 3600
    assert missed_run(NIGHTLY, at(1, 2, 5), at(2, 7), grace) == at(2, 2)
    assert missed_run(NIGHTLY, at(1, 2, 5), at(2, 9), grace) is None
    assert missed_run(NIGHTLY, at(2, 2, 0), at(2, 7), grace) is None
    assert missed_run(NIGHTLY, at(1, 2, 5), at(5, 3), grace) == at(5, 2)
    assert missed_run(NIGHTLY, None, at(2, 7), grace) is None


def test_a_stop_asked_for_before_the_scheduler_starts_stops_it_as_it_starts() -> None:
    """SIGTERM can arrive between installing the handler and `start`: the service must not then
    run on until it is killed, nor start the run it had queued."""
    scheduler = BlockingScheduler()
    ran: list[str] = []
    scheduler.add_job(ran.append, "date", run_date=dt.datetime.now(UTC), args=("catch-up",))
    stop = stopper(scheduler, _Runner(None))

    stop(signal.SIGTERM)
    service = threading.Thread(target=scheduler.start, daemon=True)
    service.start()
    service.join(timeout=30)

    assert not service.is_alive()
    assert not scheduler.running
    assert ran == []


def test_service_catches_up_a_missed_run_and_stops_on_a_burst_of_sigterms(
    tmp_path: Path, broker: MosquittoBroker, recorder
) -> None:
    fired = dt.datetime.now().astimezone() - dt.timedelta(hours=1)  # the schedule is local time
    config = tmp_path / "config.toml"
    config.write_text(
        "\n".join(
            [
                "[connectors.J1]",
                "box = [0, 0, 32, 24]",
                "[mqtt]",
                'prefix = "plant/t"',
                "[retrain]",
                f'schedule = "{fired.minute} {fired.hour} * * *"',
                "nice = 0",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    state = tmp_path / "state" / "retrain"
    state.mkdir(parents=True)
    last = {"started_at": (dt.datetime.now(UTC) - dt.timedelta(days=2)).isoformat()}
    (state / "last_run.json").write_text(json.dumps(last))
    watch = recorder("plant/t/trainer/status")

    service = cli_process(
        "trainer", "--config", str(config), port=broker.port, log=tmp_path / "trainer.log"
    )
    try:
        watch.wait_for(lambda ms: any(m.json()["state"] == "idle" for m in ms), timeout=120)
    finally:
        for _ in range(50):  # a burst, as when systemd's stop and a second signal arrive together
            service.send_signal(signal.SIGTERM)
        code = service.wait(60)

    status = [m.json() for m in watch.messages if m.json()["state"] == "idle"][-1]
    assert status["trigger"] == "catch-up"
    assert status["connectors"]["J1"]["outcome"] == "unchanged"
    assert code == 0, (tmp_path / "trainer.log").read_text()[-2000:]
    assert json.loads((state / "last_run.json").read_text())["trigger"] == "catch-up"
