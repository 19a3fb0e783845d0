"""Where the retraining job keeps its own state, and how its processes yield the CPU.

Kept apart from the job so that the scheduling service can read it without loading torch.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path

from edge_agent.contracts.config import StationConfig

RETRAIN_DIR = "retrain"
LAST_RUN_FILE = "last_run.json"


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


def lower_priority(nice: int, threads: int) -> None:
    """Yield the CPU to the agent: niceness at least `nice`; `threads` torch threads when set."""
    if nice > os.getpriority(os.PRIO_PROCESS, 0):
        os.setpriority(os.PRIO_PROCESS, 0, nice)
    if threads:
        import torch

        torch.set_num_threads(threads)
