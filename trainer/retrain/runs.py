"""Where the retraining job keeps its own state, and how its processes yield the CPU.

Kept apart from the job so that the scheduling service can read it without loading torch.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.config import StationConfig

RETRAIN_DIR = "retrain"
LAST_RUN_FILE = "last_run.json"
EARLY_RUNS_FILE = "early_runs.json"


def retrain_root(config: StationConfig) -> Path:
    """`<state>/retrain`: the job's lock, status, last run, work folder and crop library."""
    return config.paths.state / RETRAIN_DIR


def read_last_run(config: StationConfig) -> dt.datetime | None:
    """When the last run started (to catch up a missed schedule), or None."""
    path = retrain_root(config) / LAST_RUN_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return dt.datetime.fromisoformat(data["started_at"].replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError):
        return None


def read_early_runs(config: StationConfig) -> dict[str, dict[str, str]]:
    """Connector -> the early retrain its last drift alarm asked for: {since (the alarm's
    start), run_id, at}; one early run per alarm."""
    path = retrain_root(config) / EARLY_RUNS_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return (
        {c: run for c, run in data.items() if isinstance(run, dict)}
        if isinstance(data, dict)
        else {}
    )


def record_early_run(config: StationConfig, connector: str, since: str, run_id: str) -> None:
    """Remember that run `run_id` is the early retrain of `connector`'s alarm begun at `since`."""
    runs = read_early_runs(config)
    runs[connector] = {"since": since, "run_id": run_id, "at": utc_now()}
    retrain_root(config).mkdir(parents=True, exist_ok=True)
    write_json_atomic(retrain_root(config) / EARLY_RUNS_FILE, runs)


def lower_priority(nice: int, threads: int) -> None:
    """Yield the CPU to the agent: niceness at least `nice`; `threads` torch threads when set."""
    if nice > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    if threads:
        import torch

        torch.set_num_threads(threads)
