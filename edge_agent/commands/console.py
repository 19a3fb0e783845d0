"""`edge-inspect console`: the operator's web page for a station, beside its agent.

Listens on localhost unless told otherwise; any other address needs users (a users file or
the `console_users` systemd credential), or the command refuses to start.
"""

from __future__ import annotations

import argparse
import getpass
import ipaddress
import sys
from pathlib import Path

from edge_agent.console.auth import UsersError, hash_password, load_users, users_file
from edge_agent.contracts.config import ConfigError, load_config

DEFAULT_PORT = 8788


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="station config (TOML); required")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port ({DEFAULT_PORT})")
    parser.add_argument(
        "--users",
        type=Path,
        help="users file (NAME:scrypt$... lines); default $CREDENTIALS_DIRECTORY/console_users",
    )
    parser.add_argument(
        "--hash-password",
        metavar="NAME",
        help="print a users-file line for NAME (password read from stdin) and exit",
    )


def is_loopback(host: str) -> bool:
    """Whether `host` only reaches this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def listen_url(host: str, port: int) -> str:
    """The address to open in a browser: an IPv6 host in brackets (RFC 3986)."""
    return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"


def _print_hash(name: str) -> int:
    if sys.stdin.isatty():
        password = getpass.getpass(f"password for {name}: ")
    else:
        password = sys.stdin.readline().rstrip("\n")
    try:
        print(f"{name}:{hash_password(password)}")
    except ValueError as exc:
        print(f"edge-inspect console: error: {exc}", file=sys.stderr)
        return 2
    return 0


def run(args: argparse.Namespace) -> int:
    if args.hash_password:
        return _print_hash(args.hash_password)
    prog = "edge-inspect console"
    if args.config is None:
        print(f"{prog}: error: --config is required (set-up saves that file)", file=sys.stderr)
        return 2
    source = users_file(args.users)
    users: dict[str, str] = {}
    try:
        if source is not None:
            users = load_users(source)
        load_config(args.config)
    except (UsersError, ConfigError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 2
    if not users and not is_loopback(args.host):
        print(
            f"{prog}: error: refusing to listen on {args.host} without authentication: "
            "give --users FILE (lines made by `edge-inspect console --hash-password NAME`) "
            "or a console_users systemd credential, or listen on 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    import uvicorn

    from edge_agent.console.app import create_app

    app = create_app(args.config, users)
    print(f"{prog}: {listen_url(args.host, args.port)} ({len(users)} users)", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False)
    return 0
