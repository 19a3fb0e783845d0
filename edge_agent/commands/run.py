"""`edge-inspect run`: the inspection agent, as the line's systemd service runs it."""

from __future__ import annotations

import argparse
import threading
from pathlib import Path

import structlog

from edge_agent.contracts.bundle import BundleError
from edge_agent.contracts.config import ConfigError, StationConfig, load_config_for_command
from edge_agent.inspect.imaging import DecodeError
from edge_agent.ops.health import HealthPortError
from edge_agent.ops.logs import configure_logging
from edge_agent.ops.stop_signals import on_stop_signal
from edge_agent.store.crop_store import JOURNAL_FILE
from edge_agent.store.journal import JournalError
from edge_agent.store.journal_lock import holding_journal


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="station config.toml")


def run(args: argparse.Namespace) -> int:
    config = load_config_for_command("edge-inspect run", args.config)
    if config is None:
        return 2
    configure_logging(config.logging.level, config.logging.format)
    stop = threading.Event()
    on_stop_signal(lambda _signum: stop.set())
    try:
        with holding_journal(config.paths.state / JOURNAL_FILE, "edge-inspect run"):
            return _serve(config, stop, args.config)
    except (JournalError, OSError) as exc:
        structlog.get_logger().error("agent cannot start", error=str(exc))
        return 1


def _serve(config: StationConfig, stop: threading.Event, path: Path | None = None) -> int:
    """Build, start and run the agent until `stop`; 1 when it cannot start."""
    from edge_agent.daemon import Agent  # after logging is set up

    try:
        agent = Agent(config, path)
    except (ConfigError, DecodeError, JournalError, BundleError, OSError) as exc:
        structlog.get_logger().error("agent cannot start", error=str(exc))
        return 1
    try:
        agent.start()
    except (ConfigError, HealthPortError, OSError) as exc:
        # an MQTT password, CA, certificate or key file missing, the health port taken:
        # one line naming the file and its key, and what had started is stopped again
        structlog.get_logger().error("agent cannot start", error=str(exc))
        agent.stop()
        return 1
    try:
        agent.run_until(stop)
    finally:
        agent.stop()
    return 0
