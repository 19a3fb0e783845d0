"""The periodic `<prefix>/stats` message: uptime, outbox depth and recent board latencies."""

from __future__ import annotations

import time
from collections import deque

import numpy as np

WINDOW = 1000
"""Boards whose latency the percentiles cover."""


class BoardStats:
    """Latencies of the last `WINDOW` boards; safe to append from worker threads."""

    def __init__(self) -> None:
        self.started_at = time.monotonic()
        self.latencies: deque[float] = deque(maxlen=WINDOW)

    def board(self, elapsed_ms: float) -> None:
        self.latencies.append(elapsed_ms)

    def payload(self, session: int, outbox_depth: int) -> dict:
        values = np.array(self.latencies) if self.latencies else np.zeros(1)
        return {
            "session": session,
            "uptime_s": round(time.monotonic() - self.started_at),
            "outbox_depth": outbox_depth,
            "latency_ms": {
                "p50": round(float(np.percentile(values, 50)), 1),
                "p99": round(float(np.percentile(values, 99)), 1),
                "n": len(self.latencies),
            },
        }
