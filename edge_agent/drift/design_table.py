"""Writes `cusum.STORED_DESIGNS`: the Bernoulli CUSUM thresholds of every grid rate at the
default ARLs of `[drift]`, so that the agent looks them up instead of solving Markov chains at
each start. Run `python -m edge_agent.drift.design_table` after changing the design rule or the
default ARLs; a test checks that the stored thresholds are the solved ones.
"""

from __future__ import annotations

import math
from typing import Any

from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.config import DriftSettings
from edge_agent.drift.cusum import RATE_GRID, STORED_DESIGNS, shifted_rate, solve_design


def grid_rates() -> list[float]:
    """Every in-control rate `bernoulli_design` rounds to."""
    steps = math.ceil(0.5 / RATE_GRID - 1e-9)
    return [min(0.5, step * RATE_GRID) for step in range(1, steps + 1)]


def solved_row(p0: float, warning_arl: float, alarm_arl: float) -> dict[str, Any]:
    """One grid rate's design as the table stores it, solved."""
    design = solve_design(p0, shifted_rate(p0), warning_arl, alarm_arl)
    return {
        "p0": p0,
        "p1": design.p1,
        "warning_arl": warning_arl,
        "alarm_arl": alarm_arl,
        "warning": design.warning,
        "alarm": design.alarm,
    }


def main() -> None:
    settings = DriftSettings()
    arls = settings.warning_arl_boards, settings.alarm_arl_boards
    rows = []
    for number, rate in enumerate(grid_rates(), 1):
        rows.append(solved_row(rate, *arls))
        if number % 10 == 0:
            print(f"{number} rates designed", flush=True)
    write_json_atomic(STORED_DESIGNS, {"designs": rows})
    print(f"{len(rows)} designs written to {STORED_DESIGNS}")


if __name__ == "__main__":
    main()
