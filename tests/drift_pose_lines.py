"""How the capture's signed pose test behaves on simulated lines, measured (not asserted): run
`PYTHONPATH=. python tests/drift_pose_lines.py [LINES]`. Boards are placed uniformly within
+-25 px (as the default station's); each line learns its own 150-board baseline. Prints how
many lines alarm in 1500 clean boards after it, and, on 30 other lines, the boards from the end
of a 12 px ramp over 300 boards to the first warning and alarm (negative: before its end)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from test_drift_statistics import IMAGE, SETTINGS, Line

from edge_agent.drift.capture_watch import CaptureWatch

CLEAN_BOARDS = 1500
RAMP, HOLD, MOVE_PX = 300, 400, 12.0


def clean_lines(lines: int) -> list[int]:
    """The seeds of the lines that alarmed on a still camera."""
    alarmed = []
    for seed in range(lines):
        watch, line = CaptureWatch("sha", IMAGE, SETTINGS), Line(5000 + seed)
        for _ in range(SETTINGS.baseline_boards + CLEAN_BOARDS):
            if watch.update(line.board()[1]) == 2:
                alarmed.append(seed)
                break
    return alarmed


def ramp_line(seed: int) -> tuple[int | None, int | None]:
    """Boards from the ramp's end to the first warning and the first alarm (None: never)."""
    watch, line = CaptureWatch("sha", IMAGE, SETTINGS), Line(2000 + seed)
    for _ in range(SETTINGS.baseline_boards + 50):
        watch.update(line.board()[1])
    warning = alarm = None
    for n in range(RAMP + HOLD):
        level = watch.update(line.board(move=MOVE_PX * min(1.0, (n + 1) / RAMP))[1])
        if level >= 1 and warning is None:
            warning = n + 1 - RAMP
        if level == 2 and alarm is None:
            alarm = n + 1 - RAMP
    return warning, alarm


def main() -> None:
    lines = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    alarmed = clean_lines(lines)
    print(f"still camera: {len(alarmed)} of {lines} lines alarmed in {CLEAN_BOARDS} boards")
    ramps = [ramp_line(seed) for seed in range(30)]
    within = sum(1 for warning, _ in ramps if warning is not None and warning <= 200)
    print(f"{MOVE_PX:g} px ramp over {RAMP} boards: warned within 200 boards of its end on "
          f"{within} of {len(ramps)} lines; (to warning, to alarm) {ramps}")  # fmt: skip


if __name__ == "__main__":
    main()
