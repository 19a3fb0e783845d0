"""`edge-inspect trainer`: the long-running retraining service on a cron schedule.

APScheduler 3 runs `edge-inspect retrain --now` as a child process at `retrain.schedule`
(coalesced, one at a time, `misfire_grace_s` late at most). A run missed while the service was
down is caught up at start when it is still within the grace, as systemd's `Persistent=true`
does for the timer alternative. Every `DRIFT_CHECK_S` it asks the journal whether a drift alarm
asks for an early retrain (`trainer.retrain.early`) and then runs `retrain --now --early`, and
looks for a save-and-retrain request of the set-up page, which `retrain-layout` carries out. One
run at a time. On SIGTERM a running job is stopped; it leaves nothing half done behind.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import structlog
from apscheduler.events import EVENT_SCHEDULER_STARTED, SchedulerEvent
from apscheduler.schedulers import SchedulerNotRunningError
from apscheduler.schedulers.blocking import BlockingScheduler
from apscheduler.triggers.cron import CronTrigger

from edge_agent.console.layout_request import read_request
from edge_agent.contracts.config import ConfigError
from edge_agent.ops.logs import configure_logging
from edge_agent.ops.stop_signals import on_stop_signal
from trainer.retrain.early import early_retrains
from trainer.retrain.runs import lower_priority, read_last_run
from trainer.settings import TrainerConfig, load_config

log = structlog.get_logger()

MAX_STEPS = 10_000
STOP_TIMEOUT_S = 30
DRIFT_CHECK_S = 60  # how often the journal is asked whether a drift alarm wants an early retrain


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        help="station config (TOML); its retrain.schedule is a cron line in local time",
    )


def missed_run(
    trigger: CronTrigger, last_run: dt.datetime | None, now: dt.datetime, grace_s: float
) -> dt.datetime | None:
    """The latest scheduled time after `last_run` that passed unrun, if still within the grace."""
    if last_run is None:
        return None
    latest, fire = None, trigger.get_next_fire_time(None, last_run + dt.timedelta(seconds=1))
    for _ in range(MAX_STEPS):
        if fire is None or fire > now:
            break
        latest, fire = fire, trigger.get_next_fire_time(fire, fire + dt.timedelta(seconds=1))
    if latest is not None and (now - latest).total_seconds() <= grace_s:
        return latest
    return None


class _Runner:
    """Starts one `retrain --now` child at a time (a second waits) and stops it on shutdown."""

    def __init__(self, config_path: Path | None) -> None:
        self.config_path = config_path
        self._child: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._one_at_a_time = threading.Lock()
        self._stopping = False

    def __call__(self, trigger: str, *options: str) -> None:
        command = [sys.executable, "-m", "edge_agent.cli", "retrain", "--now", "--trigger", trigger]
        self.run_child(trigger, [*command, *options])

    def layout(self) -> None:
        """Carry out the pending save-and-retrain request (`retrain-layout`)."""
        self.run_child("layout", [sys.executable, "-m", "edge_agent.cli", "retrain-layout"])

    def run_child(self, trigger: str, command: list[str]) -> None:
        if self.config_path is not None:
            command += ["--config", str(self.config_path)]
        with self._one_at_a_time:
            with self._lock:
                if self._stopping:
                    return
                self._child = subprocess.Popen(command)
            log.info("retrain_started", trigger=trigger, pid=self._child.pid)
            code = self._child.wait()
            log.info("retrain_finished", trigger=trigger, exit_code=code)

    @property
    def busy(self) -> bool:
        """A run is going on (or waiting for the one going on)."""
        return self._one_at_a_time.locked()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            child = self._child
        if child is not None and child.poll() is None:
            child.terminate()
            try:
                child.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def early_check(config: TrainerConfig, runner: _Runner) -> Callable[[], None]:
    """The periodic drift check: `retrain --now --early` when a drift alarm asks for it."""

    def check() -> None:
        if runner.busy:  # a run is going on: a check after it asks again
            return
        try:
            due = early_retrains(config)
        except (OSError, sqlite3.Error) as exc:
            log.warning("drift_check_failed", error=str(exc))
            return
        if due:
            for early in due:
                log.info("retrain_early_asked", connector=early.connector, reason=early.reason)
            runner("drift", "--early")

    return check


def layout_check(config: TrainerConfig, runner: _Runner) -> Callable[[], None]:
    """The periodic check for a save-and-retrain request from the set-up page."""

    def check() -> None:
        if not runner.busy and read_request(config) is not None:
            log.info("layout_request_found")
            runner.layout()

    return check


def stopper(scheduler: BlockingScheduler, runner: _Runner) -> Callable[[int], None]:
    """The stop request for `scheduler` and `runner`, valid before the scheduler has started.

    A stop asked for before `start` would find no running scheduler to shut down, and `start`
    would then run until killed; the request is kept, and the scheduler stops as it starts."""
    requested = threading.Event()

    def stop(_signum: int) -> None:
        requested.set()
        runner.stop()
        with suppress(SchedulerNotRunningError):
            scheduler.shutdown(wait=False)

    def stop_if_requested(_event: SchedulerEvent) -> None:
        if requested.is_set():
            scheduler.shutdown(wait=False)

    scheduler.add_listener(stop_if_requested, EVENT_SCHEDULER_STARTED)
    return stop


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        trigger = CronTrigger.from_crontab(config.retrain.schedule)
    except (ConfigError, ValueError) as exc:
        print(f"edge-inspect trainer: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(config.logging.level, config.logging.format)
    lower_priority(config.retrain.nice, 0)
    grace = config.retrain.misfire_grace_s
    scheduler = BlockingScheduler(
        job_defaults={"coalesce": True, "misfire_grace_time": grace, "max_instances": 1}
    )
    runner = _Runner(args.config)
    scheduler.add_job(runner, trigger, args=("schedule",), id="retrain")
    now = dt.datetime.now(trigger.timezone)
    scheduler.add_job(
        early_check(config, runner),
        "interval",
        seconds=DRIFT_CHECK_S,
        id="drift",
        next_run_time=now,
        max_instances=2,  # a check while its early run goes on finds the runner busy and ends
    )
    scheduler.add_job(
        layout_check(config, runner),
        "interval",
        seconds=DRIFT_CHECK_S,
        id="layout",
        next_run_time=now,
        max_instances=2,
    )
    missed = missed_run(trigger, read_last_run(config), now, grace)
    if missed is not None:
        log.info("retrain_catching_up", missed=missed.isoformat())
        scheduler.add_job(runner, "date", run_date=now, args=("catch-up",), id="catch-up")

    on_stop_signal(stopper(scheduler, runner))
    upcoming = trigger.get_next_fire_time(None, now)
    log.info("trainer_scheduled", schedule=config.retrain.schedule, next_run=str(upcoming))
    scheduler.start()
    log.info("trainer_stopped")
    return 0
