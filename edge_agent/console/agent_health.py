"""The station's health as the console shows it: the agent's /readyz and /metrics, disk space,
and the trainer's last status file (read as JSON; the console never loads the trainer)."""

from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from edge_agent.contracts.config import StationConfig
from edge_agent.ops.health import readyz_url

TIMEOUT_S = 1.0
RETRAIN_STATUS = Path("retrain") / "status.json"
RECALIBRATION_FILE = "recalibration.json"
METRIC_PREFIX = "edge_inspect_"


@dataclass
class AgentHealth:
    """What the agent says about itself; `reachable` False when nothing answered."""

    url: str
    reachable: bool = False
    ready: bool = False
    details: dict[str, Any] = field(default_factory=dict)
    models: dict[str, str] = field(default_factory=dict)
    boards: dict[str, float] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Disk:
    """Free space of a folder's file system."""

    path: Path
    free_gb: float
    total_gb: float

    @property
    def free_share(self) -> float:
        return self.free_gb / self.total_gb if self.total_gb else 0.0


def http_get(url: str) -> tuple[int, bytes]:
    """Status and body of a GET (an error status too); OSError when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def agent_health(config: StationConfig) -> AgentHealth:
    """Ask the agent of this config for readiness and its model and board metrics."""
    url = readyz_url(config.health)
    health = AgentHealth(url=url)
    if not config.health.enabled:
        health.error = "the agent's health endpoint is switched off (health.enabled = false)"
        return health
    try:
        status, body = http_get(url)
        health.details = json.loads(body)
        health.reachable, health.ready = True, status == 200 and health.details.get("ready")
        _, metrics = http_get(url.removesuffix("/readyz") + "/metrics")
    except (OSError, ValueError) as exc:
        health.error = f"no agent answering at {url}: {getattr(exc, 'reason', exc)}"
        return health
    for family in text_string_to_metric_families(metrics.decode("utf-8", "replace")):
        for sample in family.samples:
            if sample.name == f"{METRIC_PREFIX}model_info":
                health.models[sample.labels["connector"]] = sample.labels.get("version", "?")
            elif sample.name == f"{METRIC_PREFIX}boards_total":
                health.boards[sample.labels["evaluation"]] = sample.value
    return health


def disk(path: Path) -> Disk | None:
    """Free space where `path` lives (None when it does not exist)."""
    try:
        usage = shutil.disk_usage(path)
    except OSError:
        return None
    return Disk(Path(path), usage.free / 1e9, usage.total / 1e9)


def retrain_status(config: StationConfig) -> dict[str, Any] | None:
    """The trainer's `<state>/retrain/status.json`, or None before its first run."""
    try:
        return json.loads((config.paths.state / RETRAIN_STATUS).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def recalibration(config: StationConfig, connector: str) -> dict[str, Any] | None:
    """The connector's last recalibration from the line (`edge-inspect recalibrate` or the
    nightly job): `<state>/retrain/<connector>/recalibration.json`, or None before any."""
    path = config.paths.state / RETRAIN_STATUS.parent / connector / RECALIBRATION_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
