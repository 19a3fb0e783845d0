"""Numbers behind the connector page's charts: a score histogram and NOK per hour."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

BINS = 24


def histogram(scores: list[float], threshold: float, bins: int = BINS) -> dict[str, Any]:
    """Counts of scores in equal bins from 0 to max(2 x threshold, highest score)."""
    top = max([2.0 * threshold, *scores]) if scores else 2.0 * threshold
    width = top / bins
    counts = [0] * bins
    for score in scores:
        counts[min(bins - 1, max(0, int(score / width)))] += 1
    return {
        "bins": [
            {"low": i * width, "high": (i + 1) * width, "count": n, "over": i * width >= threshold}
            for i, n in enumerate(counts)
        ],
        "top": top,
        "peak": max(counts) if scores else 0,
        "threshold_at": threshold / top,
    }


def hourly_rates(rows: list[tuple[str, str]], hours: int = 24) -> list[dict[str, Any]]:
    """Boards and NOK share per hour (UTC) for the last `hours`, oldest first."""
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    slots = [
        (now - dt.timedelta(hours=h)).strftime("%Y-%m-%dT%H") for h in range(hours - 1, -1, -1)
    ]
    boards = Counter(created[:13] for created, _ in rows)
    nok = Counter(created[:13] for created, evaluation in rows if evaluation == "NOK")
    return [
        {
            "hour": slot[11:13] + ":00",
            "boards": boards[slot],
            "nok": nok[slot],
            "rate": nok[slot] / boards[slot] if boards[slot] else 0.0,
        }
        for slot in slots
    ]
