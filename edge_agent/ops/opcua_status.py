"""The OPC UA server's heartbeat file in the state folder, and how the agent reports it.

The server (its own process) rewrites `opcua.status.json` every few seconds; the agent's readiness
body carries what it says as an entry that never makes the agent not ready.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from edge_agent.contracts.atomic import write_json_atomic

STATUS_FILE = "opcua.status.json"
STALE_AFTER_S = 10.0


def write_status(state: Path, status: dict[str, Any]) -> None:
    """Replace the heartbeat file with `status` and the time it was written."""
    write_json_atomic(state / STATUS_FILE, {**status, "heartbeat": time.time()})


def opcua_report(state: Path, enabled: bool) -> dict[str, Any]:
    """`{"enabled", "state": off|running|stale|down|error, ...}` for the readiness body."""
    if not enabled:
        return {"enabled": False, "state": "off"}
    try:
        status = json.loads((state / STATUS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"enabled": True, "state": "down", "reason": "no heartbeat from the OPC UA server"}
    if not isinstance(status, dict):
        return {"enabled": True, "state": "down", "reason": "unreadable heartbeat"}
    age = time.time() - float(status.get("heartbeat", 0))
    report = {"enabled": True, **status, "heartbeat_age_s": round(age, 1)}
    if age > STALE_AFTER_S and status.get("state") == "running":
        report["state"] = "stale"
        report["reason"] = f"no heartbeat for {age:.0f} s"
    return report
