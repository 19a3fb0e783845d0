"""`edge-inspect soak`: a long mixed stream with faults, then every input against its verdict.

A real agent process on a station (the default synthetic one, made when missing, or
`--station`), a private mosquitto with persistence, and:
- boards at `--rate` per second for `--duration` seconds, alternately dropped into the drop
  folder and published as MQTT images (QoS 1), each with a part id of its own;
- a broker outage of `--outage` seconds (stopped cleanly, started again with its saved
  sessions) and `--kills` SIGKILLs of the agent spread over the run, the agent restarted
  after each as systemd would;
- verdicts collected by a persistent QoS 1 session, so none is missed while it reconnects.
When the stream ends it waits (at most `--drain-timeout`) for the backlog, checks lost,
doubled, seq gaps and the journal, writes `soak.json` and `soak.md` into `--out`, and exits
1 unless every input has exactly one verdict and no seq is missing.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from edge_agent.ops.logs import configure_logging
from edge_agent.store.crop_store import JOURNAL_FILE
from trainer.benches.soak.checks import check
from trainer.benches.soak.faults import FaultRunner, Supervisor, Timeline, schedule
from trainer.benches.soak.report import summary_lines, write_reports
from trainer.benches.soak.stream import ImagePublisher, InputStream
from trainer.commands.options import DefaultsShown, run_guarded
from trainer.harness.local_broker import LocalBroker
from trainer.harness.station_run import AgentProcess, VerdictListener, load_boards
from trainer.harness.station_setup import ensure_models, ensure_station, trained_station
from trainer.settings import load_config

SPLITS = ("train", "val", "test")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = DefaultsShown
    parser.add_argument(
        "--out", type=Path, default=Path("demo"), help="work folder (as demo) for the reports"
    )
    parser.add_argument(
        "--station",
        type=Path,
        help="a station folder (its config.toml) or config file with trained models "
        "(default: the synthetic station OUT/station, generated and trained when missing)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of a station made here")
    parser.add_argument("--rate", type=float, default=15.0, help="inputs per second")
    parser.add_argument("--duration", type=float, default=300.0, help="seconds of stream")
    parser.add_argument(
        "--outage", type=float, default=60.0, help="seconds of broker outage, 0 for none"
    )
    parser.add_argument("--kills", type=int, default=5, help="SIGKILLs of the agent")
    parser.add_argument(
        "--drain-timeout", type=float, default=900.0, help="seconds to wait for the backlog"
    )
    parser.add_argument("--progress", type=float, default=10.0, help="seconds between log lines")


def station_config(args: argparse.Namespace) -> Path:
    """The config file of the station to soak, with a model for every enabled connector."""
    if args.station is None:
        station = args.out / "station"
        ensure_station(station, args.seed, 320)
        ensure_models(station, retrain=False)
        return station / "config.toml"
    return trained_station(args.station)


class Progress:
    """A log line every `every` seconds (plain lines: also readable when not a terminal)."""

    def __init__(
        self,
        every: float,
        timeline: Timeline,
        stream: InputStream,
        listener: VerdictListener,
        supervisor: Supervisor,
        faults: FaultRunner,
    ) -> None:
        self.every = every
        self.timeline, self.stream, self.listener = timeline, stream, listener
        self.supervisor, self.faults = supervisor, faults
        self._next = every

    def answered(self) -> int:
        """Inputs sent that have a verdict."""
        sent = {item.part_id for item in self.stream.snapshot()}
        return len(sent & set(self.listener.by_part()))

    def follow(self, drain_timeout: float) -> float:
        """Log while the stream runs, then while its backlog drains (at most `drain_timeout`
        seconds); the seconds it took to drain."""
        while self.stream.is_alive():
            self.tick("streaming")
            time.sleep(0.2)
        sent = len(self.stream.snapshot())
        ended = self.timeline.now()
        self.timeline.add("stream ended", f"{sent} inputs")
        deadline = time.monotonic() + drain_timeout
        while self.answered() < sent and time.monotonic() < deadline:
            self.tick("draining")
            time.sleep(0.2)
        self.timeline.add("drained" if self.answered() >= sent else "drain timed out")
        return round(self.timeline.now() - ended, 1)

    def tick(self, phase: str) -> None:
        if self.timeline.now() < self._next:
            return
        self._next += self.every
        sent = len(self.stream.snapshot())
        answered = self.answered()
        print(
            f"[{self.timeline.now():6.0f} s] {phase}: sent {sent}/{self.stream.count}, "
            f"verdicts {answered}, waiting {sent - answered}, camera images unacknowledged "
            f"{self.stream.publisher.unacknowledged()} | agent "
            f"{'up' if self.supervisor.up.is_set() else 'DOWN'} | broker "
            f"{'up' if self.faults.broker_up else 'DOWN'}",
            flush=True,
        )


def soak(config_path: Path, run_dir: Path, args: argparse.Namespace) -> dict:
    """Run the stream with its faults and return the checked results."""
    config = load_config(config_path)
    boards = load_boards(config_path.parent, SPLITS)
    drop = next(iter(config.inputs.drop_folders.values()))
    count = int(args.rate * args.duration)
    faults = schedule(args.duration, args.kills, args.outage)
    print(
        f"soak: {count} inputs at {args.rate}/s for {args.duration:.0f} s, "
        f"faults at {', '.join(f'{f.at_s:.0f} s {f.kind}' for f in faults) or 'none'}; "
        f"agent log {run_dir / 'agent.log'}",
        flush=True,
    )
    with LocalBroker(run_dir / "broker") as broker:
        agent = AgentProcess(config_path, broker.port, run_dir / "agent.log", run_dir / "state")
        agent.start().wait_ready()
        listener = VerdictListener(broker.port, config.mqtt.prefix, client_id="soak-verdicts")
        camera_topic = f"{config.mqtt.prefix}/image/{config.station.camera}"
        publisher = ImagePublisher(broker.port, camera_topic)
        timeline = Timeline()
        supervisor = Supervisor(agent, timeline)
        runner = FaultRunner(faults, timeline, supervisor, broker, publisher)
        stream = InputStream(boards, drop, publisher, args.rate, count, timeline.started_at)
        progress = Progress(args.progress, timeline, stream, listener, supervisor, runner)
        try:
            for thread in (supervisor, runner, stream):
                thread.start()
            drain_s = progress.follow(args.drain_timeout)
        finally:
            stream.stop()
            runner.stop()
            supervisor.stop()
            publisher.close()
            listener.close()
        broker_log = broker.log_path.read_text(errors="replace")
    results = check(
        stream.snapshot(),
        list(listener.verdicts),
        run_dir / "state" / JOURNAL_FILE,
        timeline.events(),
        timeline.started_at,
    )
    return {
        **results,
        "drain_s": drain_s,
        "broker_dropped_messages_warnings": broker_log.count("dropped"),
        "unexpected_agent_exits": supervisor.unexpected_exits,
        "settings": {
            "rate": args.rate,
            "duration_s": args.duration,
            "outage_s": args.outage,
            "kills": args.kills,
            "station": str(config_path),
            "connectors_per_board": len(config.enabled_connectors()),
            "workers": config.scoring.workers,
            "boards_in_rotation": len(boards),
        },
    }


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        configure_logging("WARNING")
        config_path = station_config(args)
        run_dir = args.out / "soak-run"
        shutil.rmtree(run_dir, ignore_errors=True)
        results = soak(config_path, run_dir, args)
        json_path, md_path = write_reports(results, args.out)
        print("\n".join(summary_lines(results)))
        print(f"reports: {json_path}, {md_path}; agent log and journal in {run_dir}")
        return 0 if results["passed"] else 1

    return run_guarded("edge-inspect soak", body)
