"""One connector's drift tests: its scores against the model's reference quantiles, its NOK rate
against its expectation (one-sided Bernoulli CUSUMs, `cusum.py`)."""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from edge_agent.contracts.bundle import OK_QUANTILE_LEVELS, Manifest
from edge_agent.drift.cusum import (
    BernoulliDesign,
    bernoulli_design,
    rate_upper_bound,
)
from edge_agent.drift.series import pack, unpack

RECENT = 50  # scores the reason's median is taken over
NOK_FLOOR = 0.01  # the least NOK rate a line is expected to have (a test needs a rate > 0)
LOW, HIGH = 0.1, 0.9  # the reference quantiles whose exceedances are counted
UP = "scores_up"  # the other tests: "scores_down" (below LOW), "nok_rate"


@dataclass(frozen=True, slots=True)
class ModelReference:
    """What one model version says its OK scores look like, on the calibrated scale."""

    version: str
    quantiles: tuple[float, float, float] | None  # 10 %, 50 %, 90 %; None: bundle without them
    n_ok: int
    false_reject: float

    @classmethod
    def of(cls, manifest: Manifest) -> ModelReference:
        calibration = manifest.calibration
        quantiles = None
        if calibration.ok_quantiles is not None:
            at = dict(zip(OK_QUANTILE_LEVELS, calibration.ok_quantiles, strict=True))
            scale = calibration.raw_threshold
            quantiles = (at[LOW] / scale, at[0.5] / scale, at[HIGH] / scale)
        expected = calibration.false_reject_rate or calibration.target_false_reject or 0.0
        return cls(manifest.version, quantiles, calibration.n_ok, float(expected))


class ConnectorWatch:
    """The tests of one connector under one model version (a new version: a new watch)."""

    def __init__(self, connector: str, reference: ModelReference, settings: Any) -> None:
        self.connector = connector
        self.version = reference.version
        self.settings = settings
        self.false_reject = reference.false_reject
        self.quantiles = reference.quantiles
        self.from_line = reference.quantiles is None
        self.n_reference = reference.n_ok
        self.baseline: list[float] = []
        self.baseline_nok = 0
        self.boards = 0
        self.statistics = {"scores_up": 0.0, "scores_down": 0.0, "nok_rate": 0.0}
        self.runs = dict.fromkeys(self.statistics, 0)
        self.recent: deque[float] = deque(maxlen=RECENT)
        self.recent_nok: deque[bool] = deque(maxlen=RECENT)
        self.designs: dict[str, BernoulliDesign] = {}
        if self.quantiles is not None:
            self._design_scores()

    # -- reference ------------------------------------------------------------------------
    def _arls(self) -> tuple[float, float]:
        return self.settings.warning_arl_boards, self.settings.alarm_arl_boards

    def _design_scores(self) -> None:
        """Each tail's rate bounded above by its estimate's uncertainty (n reference scores)."""
        p_high = rate_upper_bound(1 - HIGH, self.n_reference)
        p_low = rate_upper_bound(LOW, self.n_reference)
        self.designs["scores_up"] = bernoulli_design(p_high, *self._arls())
        self.designs["scores_down"] = bernoulli_design(p_low, *self._arls())

    def _design_nok(self, n: int) -> None:
        rate = rate_upper_bound(self.baseline_nok / n, n)
        p0 = max(rate, self.false_reject, NOK_FLOOR)
        self.designs["nok_rate"] = bernoulli_design(p0, *self._arls())

    @property
    def learning(self) -> bool:
        """Still collecting the first `baseline_boards` boards (NOK rate; scores of old bundles)."""
        return "nok_rate" not in self.designs

    # -- per board ------------------------------------------------------------------------
    def update(self, score: float, nok: bool) -> int:
        """One scored board: each test's statistic moves (plain floats, no arrays); returns
        the highest level a test is at (0 ok, 1 warning, 2 alarm)."""
        self.boards += 1
        self.recent.append(score)
        self.recent_nok.append(nok)
        if "nok_rate" not in self.designs:
            self.baseline_nok += nok
            if self.from_line:
                self.baseline.append(score)
            if self.boards >= self.settings.baseline_boards:
                self._end_baseline()
        if self.quantiles is None:
            return 0
        low, _, high = self.quantiles
        above, below = score > high, score < low
        statistics, runs = self.statistics, self.runs
        if not (above or below or nok) and not (
            statistics["scores_up"] or statistics["scores_down"] or statistics["nok_rate"]
        ):
            return 0  # nothing counted and every statistic at 0: none moves (most boards)
        level = 0
        for name, design in self.designs.items():
            hit = nok if name == "nok_rate" else above if name == UP else below
            after = statistics[name] = design.step(statistics[name], hit)
            if after > 0.0:
                runs[name] += 1
                if after >= design.warning:
                    level = max(level, 2 if after >= design.alarm else 1)
            else:
                runs[name] = 0
        return level

    def _end_baseline(self) -> None:
        n = self.boards
        if self.from_line:
            low, mid, high = np.quantile(self.baseline, (LOW, 0.5, HIGH))
            self.quantiles = (float(low), float(mid), float(high))
            self.n_reference = n
            self.baseline = []
            self._design_scores()
        self._design_nok(n)

    def reset(self) -> None:
        """Every statistic back to 0 (a state was raised to alarm, or cleared)."""
        self.statistics = dict.fromkeys(self.statistics, 0.0)
        self.runs = dict.fromkeys(self.runs, 0)

    def level(self) -> tuple[int, str | None, float]:
        """(0 ok, 1 warning, 2 alarm), the deciding test and its statistic over its alarm level."""
        best, measure, ratio = 0, None, 0.0
        for name, design in self.designs.items():
            value = self.statistics[name]
            level = 2 if value >= design.alarm else 1 if value >= design.warning else 0
            if (level, value / design.alarm) > (best, ratio):
                best, measure, ratio = level, name, value / design.alarm
        return best, measure, ratio

    def warning_level(self, measure: str | None) -> float | None:
        """The test's warning level over its alarm level (what a chart of `level`'s ratio marks)."""
        design = self.designs.get(measure) if measure else None
        return design.warning / design.alarm if design else None

    # -- words ----------------------------------------------------------------------------
    def value_reference(self, measure: str | None) -> tuple[float | None, float | None]:
        """The measure's recent value and its reference: the median score over the boards since
        its test left 0 (at most `RECENT`), or the NOK share of the last `RECENT` boards."""
        if measure == "nok_rate":
            return sum(self.recent_nok) / max(1, len(self.recent_nok)), self.designs[measure].p0
        if self.quantiles is None or not self.recent:
            return None, None
        boards = max(1, min(self.runs.get(measure or "", 0), RECENT))
        return statistics.median(list(self.recent)[-boards:]), self.quantiles[1]

    def describe(self, measure: str | None) -> str:
        """Plain words: the measure, its value, the reference and the boards seen."""
        cid, boards = self.connector, self.boards
        if measure is None:
            if self.learning:
                what = "scores and NOK rate" if self.from_line else "NOK rate"
                why = " (the bundle carries no OK score quantiles)" if self.from_line else ""
                return (
                    f"{cid}: reference {what} from the first {self.settings.baseline_boards} "
                    f"scored boards of model {self.version} on the line{why}, {boards} so far"
                )
            return f"{cid}: within bounds of model {self.version}'s reference, {boards} boards"
        value, reference = self.value_reference(measure)
        if measure == "nok_rate":
            return (
                f"{cid} NOK rate: {value:.1%} of the last {len(self.recent_nok)} boards, "
                f"expected {reference:.1%}, {boards} boards"
            )
        tail = (
            f"above the reference's {HIGH:.0%}"
            if measure == "scores_up"
            else (f"below the reference's {LOW:.0%}")
        )
        low, _, high = self.quantiles  # type: ignore[misc]
        share = sum(s > high if measure == "scores_up" else s < low for s in self.recent)
        source = " (reference from the line)" if self.from_line else ""
        return (
            f"{cid} scores: median {value:.2f}, reference {reference:.2f}, {boards} boards; "
            f"{share / len(self.recent):.0%} of the last {len(self.recent)} {tail} quantile"
            f"{source}"
        )

    # -- persistence ----------------------------------------------------------------------
    def detail(self) -> dict[str, Any]:
        """Everything a restart needs to go on where this watch was."""
        return {
            "version": self.version,
            "quantiles": self.quantiles,
            "from_line": self.from_line,
            "n_reference": self.n_reference,
            "baseline": pack(self.baseline),
            "baseline_nok": self.baseline_nok,
            "boards": self.boards,
            "statistics": self.statistics,
            "runs": self.runs,
            "recent": pack(self.recent),
            "recent_nok": list(self.recent_nok),
            "designed": sorted(self.designs),
        }

    def restore(self, detail: dict[str, Any]) -> None:
        """Take up the statistics of `detail` (same model version, checked by the caller)."""
        self.quantiles = tuple(detail["quantiles"]) if detail["quantiles"] else None
        self.from_line = bool(detail["from_line"])
        self.n_reference = int(detail["n_reference"])
        self.baseline = unpack(detail["baseline"])
        self.baseline_nok = int(detail["baseline_nok"])
        self.boards = int(detail["boards"])
        self.statistics.update(detail["statistics"])
        self.runs.update(detail["runs"])
        self.recent.extend(unpack(detail["recent"]))
        self.recent_nok.extend(detail["recent_nok"])
        self.designs = {}
        if self.quantiles is not None:
            self._design_scores()
        if "nok_rate" in detail["designed"]:
            self._design_nok(min(self.boards, self.settings.baseline_boards))
