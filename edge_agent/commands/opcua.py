"""`edge-inspect opcua`: the station's OPC UA server (its own unit); certificate and users."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import signal
import sys
from pathlib import Path

from edge_agent.contracts.config import load_config_for_command


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="station config (TOML)")
    parser.add_argument(
        "--make-cert", action="store_true", help="make the server certificate if missing, exit"
    )
    parser.add_argument(
        "--add-user", metavar="NAME", help="add NAME to opcua.users_file (password on stdin), exit"
    )


def run(args: argparse.Namespace) -> int:
    config = load_config_for_command("edge-inspect opcua", args.config)
    if config is None:
        return 2
    from edge_agent.opcua.server import StationServer, make_certificate
    from edge_agent.opcua.users import add_user
    from edge_agent.ops.logs import configure_logging

    configure_logging(config.logging.level, config.logging.format)
    if args.make_cert:
        asyncio.run(make_certificate(config))
        print(f"{config.opcua.certificate}: server certificate ready")
        return 0
    if args.add_user:
        prompt = "password: " if sys.stdin.isatty() else ""
        password = getpass.getpass(prompt) if prompt else sys.stdin.readline().rstrip("\n")
        add_user(config.opcua.users_file, args.add_user, password)
        print(f"{args.add_user}: added to {config.opcua.users_file}")
        return 0
    if not config.opcua.enabled:
        print("edge-inspect opcua: error: opcua.enabled is false", file=sys.stderr)
        return 2

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        server = StationServer(config)
        await server.start()
        await server.serve(stop)

    asyncio.run(main())
    return 0
