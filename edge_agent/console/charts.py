"""Numbers behind the connector page's charts: a score histogram, NOK per hour and the drift
statistic over time."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import Any

BINS = 24
CHART_LEFT, CHART_WIDTH = 20, 440  # the plotting area of a 480 x 200 chart
CHART_BASE, CHART_HEIGHT = 170, 150


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


def drift_chart(
    points: list[tuple[str, float, str]], warning_level: float | None
) -> dict[str, Any] | None:
    """A subject's drift statistic over time in the connector page's 480 x 200 chart: the line
    (x by time) and its stretches by state, the alarm level 1.0 and the warning level (when
    known) as heights, the state changes as x positions. `points` are (ISO time, statistic /
    alarm threshold, state), oldest first."""
    if not points:
        return None
    levels = [1.0] + ([warning_level] if warning_level else [])
    top = max([1.25 * level for level in levels] + [value for _, value, _ in points])
    times = [_seconds(at) for at, _, _ in points]
    span = times[-1] - times[0]

    def x(i: int) -> float:
        share = (times[i] - times[0]) / span if span > 0 else i / max(len(points) - 1, 1)
        return round(CHART_LEFT + CHART_WIDTH * share, 1)

    def y(value: float) -> float:
        return round(CHART_BASE - CHART_HEIGHT * max(value, 0.0) / top, 1)

    xy = [f"{x(i)},{y(value)}" for i, (_, value, _) in enumerate(points)]
    segments: list[dict[str, Any]] = []
    for i, (_, _, state) in enumerate(points):
        if segments and segments[-1]["state"] == state:
            segments[-1]["points"].append(xy[i])
        else:  # a new state's stretch starts where the last one ended: the line stays whole
            segments.append({"state": state, "points": [*xy[i - 1 : i], xy[i]]})
    return {
        "line": " ".join(xy),
        "segments": [{"state": g["state"], "points": " ".join(g["points"])} for g in segments],
        "top": top,
        "alarm_y": y(1.0),
        "warning_y": y(warning_level) if warning_level else None,
        "changes": [
            {"x": x(i), "state": state, "at": at}
            for i, (at, _, state) in enumerate(points)
            if i and state != points[i - 1][2]
        ],
        "first": points[0][0],
        "last": points[-1][0],
        "rows": len(points),
    }


def _seconds(at: str) -> float:
    return dt.datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
