"""One picture per scenario: the monitor's deciding statistic over the boards, the change marked.

The statistic comes from the journal's `drift_history` rows (1.0 = alarm level); each row is
put on the board whose verdict was created last before it.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

from trainer.benches.drift.report import Row
from trainer.benches.drift.scenarios import Scenario


def _time(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def history_by_board(
    history: Sequence[Mapping], verdict_times: Sequence[tuple[str, int]]
) -> dict[str, tuple[list[int], list[float]]]:
    """subject -> (board indices, statistics) of the history rows, in time order."""
    ordered = sorted((_time(at), board) for at, board in verdict_times)
    times = [t for t, _ in ordered]
    series: dict[str, tuple[list[int], list[float]]] = {}
    for row in sorted(history, key=lambda r: _time(r["at"])):
        place = bisect.bisect_right(times, _time(row["at"])) - 1
        if place < 0 or row.get("statistic") is None:
            continue
        boards, values = series.setdefault(row["subject"], ([], []))
        boards.append(ordered[place][1])
        values.append(float(row["statistic"]))
    return series


def plot(
    scenario: Scenario,
    row: Row,
    series: Mapping[str, tuple[list[int], list[float]]],
    path: Path,
) -> Path:
    """Write the scenario's picture to `path`."""
    figure, axes = plt.subplots(figsize=(8, 3.6), dpi=110)
    shown = row.expected
    for subject, (boards, values) in sorted(series.items()):
        if subject == shown:
            continue
        axes.plot(boards, values, color="0.75", linewidth=0.8)
    if shown in series:
        boards, values = series[shown]
        axes.plot(boards, values, color="tab:blue", linewidth=1.6, label=f"{shown}")
    axes.plot([], [], color="0.75", linewidth=0.8, label="other subjects" if shown else "subjects")
    axes.axhline(1.0, color="tab:red", linestyle="--", linewidth=1, label="alarm level")
    if scenario.change is not None:
        axes.axvspan(scenario.prefix, scenario.boards, color="tab:orange", alpha=0.08)
        axes.axvline(scenario.prefix, color="tab:orange", linewidth=1.2, label="change starts")
        if scenario.kind == "ramp":
            axes.axvline(
                scenario.reference_index, color="tab:orange", linestyle=":", label="ramp ends"
            )
    for delay, colour, what in ((row.warning_delay, "tab:olive", "first warning"),
                                (row.alarm_delay, "tab:red", "first alarm")):  # fmt: skip
        if delay is not None:
            board = scenario.reference_index + delay - 1
            axes.axvline(board, color=colour, linewidth=1, alpha=0.7, label=what)
    if not series:
        axes.text(0.5, 0.5, "no drift history in the journal", ha="center",
                  transform=axes.transAxes)  # fmt: skip
    axes.set_xlim(0, scenario.boards)
    axes.set_xlabel("board")
    axes.set_ylabel("statistic / alarm threshold")
    axes.set_title(f"{row.label}: {row.summary()} ({'PASS' if row.passed else 'FAIL'})", fontsize=9)
    axes.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
    return path
