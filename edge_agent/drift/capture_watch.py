"""The photo's drift tests: each capture measure (`inspect/capture.py`) against the reference
the line set after the reference image was set, by a two-sided normal CUSUM.

The reference is the first `baseline_boards` boards' median and MAD (robust: a few odd boards
do not move it). Allowance k: half the smallest change worth naming (a floor in the measure's
units, `FLOORS`) or 0.5 sigma, whichever is larger, so natural board-to-board variation never
accumulates; a spread below half the floor is taken as half the floor, so a near-constant
measure is not held to a precision it never promised. Thresholds from the stated in-control
ARLs (`cusum.normal_thresholds`).

The signed pose (`offset_x`, `offset_y`: where the reference's centre lies in the photo) varies
as widely as boards are placed, and a camera that moves slowly shifts it by less than that
spread; its reference is the baseline's mean and sd (a placement spread is symmetric and
bounded, where the mean is the sharper estimate), after leaving out values beyond 5 MADs. Both
estimates carry their own error into the test, so that an unlucky baseline does not pass for a
moved camera: the sd is taken at its upper bound (`Z_SPREAD`: sd x (1 + z / sqrt(2 (n - 1)))) and
the allowance adds `Z_REFERENCE` standard errors of the centre (1 / sqrt(n) in sd units).

One board moves a statistic by at most half its alarm level (a single odd photo never alarms; a
sustained change does in two boards, and an alarm's statistic stays bounded, so it clears soon
after the change ends).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from typing import Any

from edge_agent.drift.cusum import normal_thresholds
from edge_agent.drift.series import pack, unpack
from edge_agent.inspect.capture import MEASURES

RECENT = 20  # boards the reason's value is the median of
MAD_TO_SD = 1.4826
MEAN_CENTRED = ("offset_x", "offset_y")  # referenced by mean and sd, with the centre's error
Z_REFERENCE = 2.33  # one-sided 99 %: how far the baseline's centre may be off, in its SEs
Z_SPREAD = 1.645  # one-sided 95 %: the sd is taken at its upper bound
OUTLIER_MADS = 5.0
# measure: (smallest change worth naming, relative to the reference (True) or in its units)
FLOORS: dict[str, tuple[float, bool]] = {
    "brightness": (0.04, True),
    "contrast": (0.08, True),
    "sharpness": (0.25, True),
    "inliers": (0.10, False),
    "residual": (0.5, False),
    "offset": (3.0, False),
    "offset_x": (3.0, False),
    "offset_y": (3.0, False),
    "rotation": (0.4, False),
    "scale": (0.005, False),
}
CAUSES = {
    "brightness": "light changed",
    "contrast": "light changed",
    "sharpness": "out of focus",
    "inliers": "camera moved or view obstructed",
    "residual": "camera moved or view obstructed",
    "offset": "camera moved",
    "offset_x": "camera moved",
    "offset_y": "camera moved",
    "rotation": "camera moved",
    "scale": "camera moved",
}
RELATIVE = ("brightness", "contrast", "sharpness")  # said as "x reference image"
UNITS = {
    "residual": " px",
    "offset": " px",
    "offset_x": " px",
    "offset_y": " px",
    "rotation": " deg",
    "inliers": "",
    "scale": "",
}


class CaptureWatch:
    """The capture tests under one reference image (another image: a new watch)."""

    def __init__(self, reference_sha256: str, image: dict[str, float], settings: Any) -> None:
        self.reference_sha256 = reference_sha256
        self.image = image  # the reference image's own photometric measures
        self.settings = settings
        self.boards = 0
        self.n_reference = settings.baseline_boards  # boards the reference was measured on
        self.baseline: dict[str, list[float]] = {m: [] for m in MEASURES}
        self.centre: dict[str, float] = {}
        self.sd: dict[str, float] = {}
        self.k: dict[str, float] = {}
        self.thresholds: dict[str, tuple[float, float]] = {}
        self.reach: dict[str, float] = {}  # the most one board may move a statistic, in sd
        self.up = dict.fromkeys(MEASURES, 0.0)
        self.down = dict.fromkeys(MEASURES, 0.0)
        self.runs = dict.fromkeys(MEASURES, 0)
        self.recent: dict[str, deque[float]] = {m: deque(maxlen=RECENT) for m in MEASURES}

    @property
    def learning(self) -> bool:
        return not self.centre

    def update(self, measures: dict[str, float]) -> int:
        """One photo's measures (a measure it lacks, the focus or the light, leaves its
        test as it was): each test's two statistics move; returns the highest level a test is
        at (0 ok, 1 warning, 2 alarm)."""
        self.boards += 1
        for name, value in measures.items():
            self.recent[name].append(float(value))
        if self.learning:
            for name, value in measures.items():
                self.baseline[name].append(value)
            if self.boards >= self.settings.baseline_boards:
                self._end_baseline()
            return 0
        level = 0
        for name, (warning, alarm) in self.thresholds.items():
            value = measures.get(name)
            if value is None:
                continue
            z = (value - self.centre[name]) / self.sd[name]
            k, reach = self.k[name], self.reach[name]
            z = reach if z > reach else -reach if z < -reach else z
            up = self.up[name] + z - k
            down = self.down[name] - z - k
            up = self.up[name] = up if up > 0.0 else 0.0
            down = self.down[name] = down if down > 0.0 else 0.0
            self.runs[name] = self.runs[name] + 1 if up > 0.0 or down > 0.0 else 0
            if up >= warning or down >= warning:
                level = max(level, 2 if up >= alarm or down >= alarm else 1)
        return level

    def _end_baseline(self) -> None:
        self.n_reference = max(len(values) for values in self.baseline.values())  # the pose's
        for name in MEASURES:
            values = self.baseline[name]
            if not values:  # never read during the baseline: not tested
                continue
            centre = statistics.median(values)
            mad = statistics.median(abs(v - centre) for v in values)
            spread = MAD_TO_SD * mad
            if name in MEAN_CENTRED:
                kept = [v for v in values if abs(v - centre) <= OUTLIER_MADS * spread] or values
                centre = statistics.fmean(kept)
                spread = statistics.stdev(kept) if len(kept) > 1 else spread
            self._design(name, centre, spread)
        self.baseline = {m: [] for m in MEASURES}

    def _design(self, name: str, centre: float, spread: float, measured: bool = True) -> None:
        """A test from its reference: `spread` as the baseline measured it, or (not `measured`)
        the sd a test was designed with already (a restart takes it up as it was)."""
        floor, relative = FLOORS[name]
        change = floor * abs(centre) if relative else floor
        if measured and name in MEAN_CENTRED:
            spread *= 1 + Z_SPREAD / math.sqrt(2 * max(self.n_reference - 1, 1))
        sd = max(spread, change / 2, 1e-9)
        self.centre[name], self.sd[name] = centre, sd
        k = max(0.5, change / (2 * sd))
        if name in MEAN_CENTRED:
            k += Z_REFERENCE / math.sqrt(max(self.n_reference, 1))
        self.k[name] = round(k, 3)
        arls = self.settings.warning_arl_boards, self.settings.alarm_arl_boards
        self.thresholds[name] = normal_thresholds(self.k[name], *arls)
        self.reach[name] = self.k[name] + self.thresholds[name][1] / 2

    def reset(self) -> None:
        """Every statistic back to 0 (a state was raised to alarm, or cleared)."""
        self.up = dict.fromkeys(MEASURES, 0.0)
        self.down = dict.fromkeys(MEASURES, 0.0)
        self.runs = dict.fromkeys(MEASURES, 0)

    def level(self) -> tuple[int, str | None, float]:
        """(0 ok, 1 warning, 2 alarm), the deciding measure, its statistic over its alarm level."""
        best, measure, ratio = 0, None, 0.0
        for name, (warning, alarm) in self.thresholds.items():
            value = max(self.up[name], self.down[name])
            level = 2 if value >= alarm else 1 if value >= warning else 0
            if (level, value / alarm) > (best, ratio):
                best, measure, ratio = level, name, value / alarm
        return best, measure, ratio

    def warning_level(self, measure: str | None) -> float | None:
        """The measure's warning level over its alarm level (what a chart of `level`'s ratio
        marks)."""
        levels = self.thresholds.get(measure) if measure else None
        return levels[0] / levels[1] if levels else None

    def value_reference(self, measure: str | None) -> tuple[float | None, float | None]:
        """The measure's median over the boards since its test left 0 (at most `RECENT`) and
        its reference (the reference image's own value for light and focus, the line's for
        the others)."""
        if measure is None or not self.recent[measure]:
            return None, None
        boards = max(1, min(self.runs[measure], RECENT))
        value = statistics.median(list(self.recent[measure])[-boards:])
        reference = self.image.get(measure) if measure in RELATIVE else self.centre.get(measure)
        return value, reference

    def describe(self, measure: str | None) -> str:
        """Plain words: the measure, its value against the reference, the boards, the cause."""
        if measure is None:
            if self.learning:
                return (
                    f"capture: reference from the first {self.settings.baseline_boards} boards "
                    f"after the reference image was set, {self.boards} so far"
                )
            return f"capture: within bounds of the line's reference, {self.boards} boards"
        value, reference = self.value_reference(measure)
        boards = self.runs[measure]
        if measure in RELATIVE and reference:
            said = f"{measure} {value / reference:.2f} x reference"
        else:
            unit = UNITS[measure]
            said = f"{measure} {value:.3g}{unit}, reference {reference:.3g}{unit}"
        return f"capture: {said} over {boards} boards: {CAUSES[measure]}"

    def detail(self) -> dict[str, Any]:
        """Everything a restart needs to go on where this watch was."""
        return {
            "reference_sha256": self.reference_sha256,
            "boards": self.boards,
            "baseline": {m: pack(v) for m, v in self.baseline.items()},
            "centre": self.centre,
            "sd": self.sd,
            "n_reference": self.n_reference,
            "up": self.up,
            "down": self.down,
            "runs": self.runs,
            "recent": {m: pack(v) for m, v in self.recent.items()},
        }

    def restore(self, detail: dict[str, Any]) -> None:
        """Take up the statistics of `detail` (same reference image, checked by the caller);
        one written before a measure existed is left: the reference is learnt again."""
        if not set(MEASURES) <= set(detail["baseline"]):
            return
        self.boards = int(detail["boards"])
        self.n_reference = int(detail.get("n_reference", self.n_reference))
        self.baseline = {m: unpack(detail["baseline"].get(m, [])) for m in MEASURES}
        for name in MEASURES:
            self.recent[name].extend(unpack(detail["recent"].get(name, [])))
        self.up.update(detail["up"])
        self.down.update(detail["down"])
        self.runs.update(detail["runs"])
        for name in MEASURES:
            if name in detail["centre"]:
                self._design(name, detail["centre"][name], detail["sd"][name], measured=False)
