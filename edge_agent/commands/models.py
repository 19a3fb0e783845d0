"""`edge-inspect models list|show|promote|rollback`: the connectors' model versions on disk.

Promote and rollback switch the `active` link atomically; a running agent follows within a
second and announces the change on `<prefix>/model/<connector>`.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from edge_agent.contracts.bundle import REJECTED_DIR, BundleError, connector_dir, read_manifest
from edge_agent.contracts.config import ConfigError, StationConfig, load_config
from edge_agent.feedback import lifecycle
from edge_agent.ops.user_name import current_user

GATE_FILE = "gate.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, help="station config (TOML)")
    # --config also after the action (`models list --config FILE`), without overriding it
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    actions = parser.add_subparsers(dest="action", required=True)

    def action(name: str, text: str) -> argparse.ArgumentParser:
        return actions.add_parser(name, help=text, parents=[common])

    listing = action("list", "active, candidate and rollback target per connector")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = action("show", "one version's manifest summary and gate decision")
    show.add_argument("connector")
    show.add_argument("version", nargs="?", help="default: the active version")
    promote = action("promote", "activate the candidate (or a named version)")
    promote.add_argument("connector")
    promote.add_argument("version", nargs="?", help="default: the candidate")
    rollback = action("rollback", "restore the previously active version")
    rollback.add_argument("connector")
    for sub in (promote, rollback):
        sub.add_argument("--by", help="who (default: your login name, else uid-<n>)")


def _check_station(config: StationConfig, path: Path | None) -> None:
    """Refuse a config that names no connector or whose models folder does not exist: an
    empty table would read as a station without models."""
    where = path or "settings (no --config)"
    if not config.enabled_connectors():
        raise ConfigError(f"{where}: no enabled connector ([connectors.<id>] tables)")
    if not config.paths.models.is_dir():
        raise ConfigError(
            f"{where}: paths.models {config.paths.models} is not a folder "
            "(is this the station's config?)"
        )


def _list(config: StationConfig, as_json: bool) -> int:
    states = [
        lifecycle.state(config.paths.models, c, config.connectors[c].crop_size)
        for c in config.enabled_connectors()
    ]
    if as_json:
        print(json.dumps([s.as_dict() for s in states], indent=2))
        return 0
    header = ("connector", "active", "candidate", "rollback to", "installed", "refused", "last")
    rows = [header]
    for s in states:
        last = s.last_event or {}
        event = f"{last.get('event', '-')} {last.get('version') or ''} {last.get('at', '')}"
        rows.append(
            (
                s.connector,
                s.active or "-",
                s.candidate or "-",
                s.rollback_to or "-",
                str(len(s.versions)),
                str(len(s.rejected)),
                event.strip(),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )
    return 0


def _show(config: StationConfig, connector: str, version: str | None) -> int:
    version = version or lifecycle.state(config.paths.models, connector).active
    if version is None:
        raise lifecycle.LifecycleError(f"{connector}: no active version (name one)")
    root = connector_dir(config.paths.models, connector)
    folder = root / version
    refused = not folder.is_dir()
    if refused:
        folder = root / REJECTED_DIR / version
    if not folder.is_dir():
        raise lifecycle.LifecycleError(f"{connector}: no version {version!r} in {root}")
    manifest = read_manifest(folder)
    summary: dict[str, Any] = {
        "connector": connector,
        "version": version,
        "status": "refused" if refused else _status(config, connector, version),
        "created_at": manifest.created_at,
        "method": manifest.method,
        "backbone": manifest.backbone,
        "input": f"{manifest.input.width}x{manifest.input.height}",
        "calibration": manifest.calibration.model_dump(exclude={"guarantee"}),
        "training": manifest.training.model_dump(exclude={"params"}),
        "metrics": manifest.metrics,
        "onnx_sha256": manifest.onnx_sha256,
    }
    for name in (GATE_FILE, lifecycle.REASON_FILE):
        if (folder / name).is_file():
            summary[name.removesuffix(".json")] = json.loads((folder / name).read_text())
    print(json.dumps(summary, indent=2))
    return 0


def _status(config: StationConfig, connector: str, version: str) -> str:
    current = lifecycle.state(config.paths.models, connector)
    return {current.active: "active", current.candidate: "candidate"}.get(version, "installed")


def run(args: argparse.Namespace) -> int:
    try:
        config = load_config(args.config)
        connectors = config.enabled_connectors()
        _check_station(config, args.config)
        if getattr(args, "connector", None) not in (None, *connectors):
            raise ConfigError(f"connector {args.connector!r} is not one of {connectors}")
        if args.action == "list":
            return _list(config, args.json)
        if args.action == "show":
            return _show(config, args.connector, args.version)
        models, by = config.paths.models, f"cli:{args.by or current_user()}"
        crop_size = config.connectors[args.connector].crop_size
        if args.action == "promote":
            event = lifecycle.promote(models, args.connector, args.version, by, crop_size=crop_size)
        else:
            event = lifecycle.rollback(models, args.connector, by, crop_size)
    except (ConfigError, lifecycle.LifecycleError, BundleError) as exc:
        print(f"edge-inspect models: error: {exc}", file=sys.stderr)
        return 2
    print(f"{args.connector}: {event['previous'] or '-'} -> {event['version']} ({event['event']})")
    return 0
