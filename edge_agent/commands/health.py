"""`edge-inspect health`: ask the running agent of a config whether it is ready (exit 0) or not."""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

from edge_agent.contracts.config import load_config_for_command
from edge_agent.ops.health import readyz_url


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        type=Path,
        default=None,
        help="station config (TOML); without it the defaults and EDGE_INSPECT_* variables apply",
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, help="seconds to wait for an answer (default 3)"
    )


def run(args: argparse.Namespace) -> int:
    config = load_config_for_command("edge-inspect health", args.config)
    if config is None:
        return 2
    if not config.health.enabled:
        print(
            f"{args.config or 'settings'}: health.enabled is false: no endpoint to ask",
            file=sys.stderr,
        )
        return 1
    url = readyz_url(config.health)
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as response:
            status, body = response.status, response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    except (urllib.error.URLError, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        print(f"no agent answering at {url}: {reason}", file=sys.stderr)
        return 1
    print(_pretty(body))
    if status != 200:
        for reason in _reasons(body):
            print(f"not ready: {reason['reason']}\n  remedy: {reason['remedy']}", file=sys.stderr)
    return 0 if status == 200 else 1


def _reasons(body: bytes) -> list[dict[str, str]]:
    """The readiness reasons of a /readyz body (none when it has no list of them)."""
    try:
        reasons = json.loads(body).get("reasons")
    except (ValueError, AttributeError):
        return []
    if not isinstance(reasons, list):
        return []
    return [r for r in reasons if isinstance(r, dict) and {"reason", "remedy"} <= r.keys()]


def _pretty(body: bytes) -> str:
    text = body.decode("utf-8", errors="replace")
    try:
        return json.dumps(json.loads(text), indent=2, sort_keys=True)
    except ValueError:
        return text.rstrip("\n")
