"""The agent's state as every page shows it: live, not ready (and why), or unreachable since when;
plus the drift states its /readyz body carries. Asked of the agent at most every MAX_AGE_S."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from edge_agent.console.agent_health import http_get
from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.config import StationConfig
from edge_agent.ops.health import readyz_url

MAX_AGE_S = 0.2
LIVE, NOT_READY, UNREACHABLE, UNWATCHED = "live", "not_ready", "unreachable", "unwatched"


@dataclass(frozen=True)
class AgentState:
    """One look at the agent; `since` is when the console first saw it in this `state`."""

    state: str
    since: str
    reasons: Entries = field(default_factory=list)
    drift: Entries = field(default_factory=list)
    error: str | None = None
    checked_at: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


Entries = list[dict[str, str]]


def look(config: StationConfig) -> tuple[str, Entries, Entries, str | None]:
    """(state, reasons, drift entries, error) from the agent's /readyz now."""
    if not config.health.enabled:
        return UNWATCHED, [], [], "the agent's health endpoint is off (health.enabled = false)"
    url = readyz_url(config.health)
    try:
        status, body = http_get(url)
        details = json.loads(body)
    except (OSError, ValueError) as exc:
        return UNREACHABLE, [], [], f"no agent answering at {url}: {getattr(exc, 'reason', exc)}"
    if not isinstance(details, dict):
        return UNREACHABLE, [], [], f"{url} answered something that is not a readiness report"
    reasons = [_reason(r) for r in details.get("reasons") or [] if isinstance(r, dict)]
    if status != 200 and not reasons:
        reasons = [{"code": "not_ready", "reason": f"/readyz answered {status}", "remedy": ""}]
    return (LIVE if status == 200 else NOT_READY), reasons, drift_entries(details), None


def drift_entries(details: dict[str, Any]) -> Entries:
    """The body's `drift` entries as (name, state, reason, since), whatever their shape: the
    agent's mapping of subject -> {state, reason, since, ...}, or a list of objects naming
    themselves."""
    drift = details.get("drift")
    if isinstance(drift, dict):
        items = list(drift.items())
    elif isinstance(drift, list):
        items = [
            (str(d.get("connector") or d.get("name") or d.get("measure") or "?"), d)
            for d in drift
            if isinstance(d, dict)
        ]
    else:
        return []
    return [
        {
            "name": str(name),
            "state": str(entry.get("state", "?")),
            "reason": str(entry.get("reason", "")),
            "since": str(entry.get("since") or ""),
        }
        for name, entry in items
        if isinstance(entry, dict)
    ]


def _reason(raw: dict[str, Any]) -> dict[str, str]:
    return {key: str(raw.get(key) or "") for key in ("code", "reason", "remedy")}


class AgentWatch:
    """Remembers since when the agent is in its state; shared by every request (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: AgentState | None = None
        self._looked_at = 0.0

    def state(self, config: StationConfig) -> AgentState:
        """The agent's state, asked again when the last look is older than MAX_AGE_S."""
        with self._lock:
            if self._last is not None and time.monotonic() - self._looked_at < MAX_AGE_S:
                return self._last
            state, reasons, drift, error = look(config)
            now = utc_now()
            same = self._last is not None and self._last.state == state
            since = self._last.since if same and self._last is not None else now
            self._last = AgentState(state, since, reasons, drift, error, now)
            self._looked_at = time.monotonic()
            return self._last
