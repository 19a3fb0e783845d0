"""The station's state after OPC 40100-1's top-level vision states, from the agent's /readyz."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from dataclasses import dataclass

from edge_agent.contracts.config import StationConfig
from edge_agent.ops.health import readyz_url

OPERATIONAL, PREOPERATIONAL, ERROR, HALTED = "Operational", "Preoperational", "Error", "Halted"
TIMEOUT_S = 1.0


@dataclass(frozen=True)
class VisionState:
    state: str
    reason: str
    drift: str  # the body's drift entries as JSON ("[]" where the agent reports none)


def look(config: StationConfig) -> VisionState:
    """Operational when ready; Preoperational with the reasons when not; Error when no agent
    answers; Halted when the agent's health endpoint is off (nothing to tell)."""
    if not config.health.enabled:
        return VisionState(HALTED, "the agent's health endpoint is off", "[]")
    url = readyz_url(config.health)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            body = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            body = json.loads(exc.read())
        except ValueError:
            body = {"ready": False}
    except (OSError, ValueError) as exc:
        return VisionState(ERROR, f"no agent answering at {url}: {exc}", "[]")
    if not isinstance(body, dict):
        return VisionState(ERROR, f"{url} answered no readiness report", "[]")
    drift = json.dumps(body.get("drift") or [])
    if body.get("ready"):
        return VisionState(OPERATIONAL, "", drift)
    reasons = [r.get("reason", "") for r in body.get("reasons") or [] if isinstance(r, dict)]
    return VisionState(PREOPERATIONAL, "; ".join(reasons) or "not ready", drift)
