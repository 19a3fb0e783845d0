"""The drift monitor's sequential tests: CUSUMs whose thresholds carry a stated false-alarm rate.

Each threshold is derived once per reference (a model load, a new capture reference) from an
in-control average run length (ARL0: boards between two false signals while nothing changed),
never per board. Bernoulli CUSUMs (exceedances of reference quantiles, NOK verdicts) get theirs
from the Brook-Evans Markov chain; the normal CUSUMs of the capture measures from Siegmund's
closed form. Stated rates, with the defaults of `[drift]`: a false alarm once in 10^6 boards and
a false warning once in 10^5 boards per test, when the in-control model holds.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import structlog

log = structlog.get_logger(__name__)
Z_UPPER = 1.645
"""One-sided 95 % normal quantile: the confidence of the in-control rate's upper bound."""
MAX_STATES = 500  # Markov chain size (Brook-Evans): a solve takes milliseconds
STEP_UNITS = 6  # the smaller step in chain units (when the states allow): rounding <= 1/6
RATE_GRID = 0.005  # in-control rates are rounded up to this grid (conservative; designs shared)
STORED_DESIGNS = Path(__file__).with_name("bernoulli_designs.json")
"""The thresholds of every grid rate at the default ARLs, computed once by
`python -m edge_agent.drift.design_table`: a start then designs its tests without the Markov-chain
solves (about 0.5 s of CPU per rate, on BLAS threads at the agent's own priority)."""


def rate_upper_bound(rate: float, n: int) -> float:
    """An upper 95 % confidence bound on the true exceedance rate of a quantile at `rate`
    estimated from `n` scores (Wilson score bound): the conservative in-control rate."""
    if n <= 0:
        return min(0.5, 2 * rate)
    z2 = Z_UPPER * Z_UPPER
    centre = rate + z2 / (2 * n)
    spread = Z_UPPER * math.sqrt(rate * (1 - rate) / n + z2 / (4 * n * n))
    return min(0.5, (centre + spread) / (1 + z2 / n))


def bernoulli_arl(p: float, up: float, down: float, h: float) -> float:
    """In-control ARL of the CUSUM S = max(0, S + (up if x else down)), x ~ Bernoulli(p),
    signalling at S >= h, by the Brook-Evans Markov chain from S = 0.

    The chain's steps round `up` up and `down` towards 0, so every path climbs at least as
    fast as the real statistic: the ARL is never overstated (the stated rate is an upper bound
    on the false signals)."""
    unit = max(min(up, -down) / STEP_UNITS, h / MAX_STATES)
    fall = max(1, math.floor(-down / unit + 1e-9))
    rise = math.ceil(up / unit - 1e-9)
    states = max(1, math.ceil(h / unit - 1e-9))
    index = np.arange(states)
    chain = np.zeros((states, states))
    climbed = index + rise
    inside = climbed < states
    chain[index[inside], climbed[inside]] += p
    chain[index, np.maximum(index - fall, 0)] += 1 - p
    run = np.linalg.solve(np.eye(states) - chain, np.ones(states))
    return float(run[0])


@dataclass(frozen=True, slots=True)
class BernoulliDesign:
    """A one-sided Bernoulli CUSUM: in-control rate p0 against p1, and its two thresholds."""

    p0: float
    p1: float
    up: float
    down: float
    warning: float
    alarm: float

    def step(self, statistic: float, hit: bool) -> float:
        """The statistic after one more board (`hit`: the event the test counts happened)."""
        statistic += self.up if hit else self.down
        return statistic if statistic > 0.0 else 0.0


def _threshold(arl: float, run_length: object) -> float:
    """The smallest threshold whose in-control ARL reaches `arl` (bisection; ARL grows with h)."""
    low, high = 0.0, 1.0
    while run_length(high) < arl:  # type: ignore[operator]
        low, high = high, 2 * high
    while high - low > 0.01 * high:
        middle = (low + high) / 2
        if run_length(middle) < arl:  # type: ignore[operator]
            low = middle
        else:
            high = middle
    return high


def bernoulli_design(p0: float, warning_arl: float, alarm_arl: float) -> BernoulliDesign:
    """The CUSUM of an in-control rate p0 (rounded up to `RATE_GRID`) against `shifted_rate`,
    with thresholds for the two stated in-control ARLs."""
    grid = min(0.5, math.ceil(p0 / RATE_GRID - 1e-9) * RATE_GRID)
    return _bernoulli_design(grid, shifted_rate(grid), warning_arl, alarm_arl)


@lru_cache(maxsize=256)
def _bernoulli_design(
    p0: float, p1: float, warning_arl: float, alarm_arl: float
) -> BernoulliDesign:
    stored = _stored_designs().get((p0, p1, warning_arl, alarm_arl))
    if stored is None:
        return solve_design(p0, p1, warning_arl, alarm_arl)
    return BernoulliDesign(p0, p1, math.log(p1 / p0), math.log((1 - p1) / (1 - p0)), *stored)


def solve_design(p0: float, p1: float, warning_arl: float, alarm_arl: float) -> BernoulliDesign:
    """The CUSUM of p0 against p1 with thresholds solved for the two ARLs (Markov chains)."""
    up = math.log(p1 / p0)
    down = math.log((1 - p1) / (1 - p0))
    warning = _threshold(warning_arl, lambda h: bernoulli_arl(p0, up, down, h))
    alarm = _threshold(alarm_arl, lambda h: bernoulli_arl(p0, up, down, h))
    return BernoulliDesign(p0, p1, up, down, warning, alarm)


@lru_cache(maxsize=1)
def _stored_designs() -> dict[tuple[float, float, float, float], tuple[float, float]]:
    """(p0, p1, warning ARL, alarm ARL) -> (warning, alarm) of `STORED_DESIGNS`; none if the
    file is missing or unreadable (logged): every design is then solved."""
    try:
        rows = json.loads(STORED_DESIGNS.read_text(encoding="utf-8"))["designs"]
        return {
            (r["p0"], r["p1"], r["warning_arl"], r["alarm_arl"]): (r["warning"], r["alarm"])
            for r in rows
        }
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("drift_designs_unreadable", path=str(STORED_DESIGNS), error=str(exc))
        return {}


def shifted_rate(p0: float) -> float:
    """The out-of-control rate a test is tuned to find quickly: three times p0 (at most 0.9),
    at least 10 points above it."""
    return min(0.9, max(3 * p0, p0 + 0.1))


def normal_arl(k: float, h: float) -> float:
    """Siegmund's approximation of a one-sided normal CUSUM's in-control ARL (allowance k,
    threshold h, standardised values)."""
    b = h + 1.166
    return (math.exp(2 * k * b) - 2 * k * b - 1) / (2 * k * k)


@lru_cache(maxsize=256)
def normal_thresholds(k: float, warning_arl: float, alarm_arl: float) -> tuple[float, float]:
    """(warning, alarm) thresholds of a two-sided normal CUSUM with allowance k: each side
    gets twice the ARL, so that both together signal once per stated ARL."""
    return (
        _threshold(2 * warning_arl, lambda h: normal_arl(k, h)),
        _threshold(2 * alarm_arl, lambda h: normal_arl(k, h)),
    )
