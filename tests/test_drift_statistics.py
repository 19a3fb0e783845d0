"""The drift monitor's statistics on generated streams (fixed seeds): stationary noise never
alarms, a step is found within a stated number of boards and named for what it is, states
clear after `clear_after_boards`, and the ARL computation agrees with a simulation."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from edge_agent.contracts.config import DriftSettings
from edge_agent.drift.capture_watch import CaptureWatch
from edge_agent.drift.connector_watch import ConnectorWatch, ModelReference
from edge_agent.drift.cusum import (
    bernoulli_arl,
    bernoulli_design,
    normal_arl,
    normal_thresholds,
    rate_upper_bound,
)
from edge_agent.drift.monitor import CAPTURE, DriftMonitor
from edge_agent.inspect.capture import MEASURES, photometric, reads
from edge_agent.inspect.registration import gray_level

CONNECTORS = ["J1", "J2", "J3"]
VERSION = "2026-01-01.1"
SCORE_MEAN, SCORE_SD = 0.5, 0.12
# The reference quantiles (10 %, 50 %, 90 %) of the OK scores, on the calibrated scale.
QUANTILES = (SCORE_MEAN - 1.2816 * SCORE_SD, SCORE_MEAN, SCORE_MEAN + 1.2816 * SCORE_SD)
IMAGE = {"brightness": 120.0, "contrast": 40.0, "sharpness": 0.5}
SETTINGS = DriftSettings(baseline_boards=150, clear_after_boards=50)


def reference(connector: str, version: str = VERSION) -> ModelReference:
    return ModelReference(version, QUANTILES, 1000, 0.005)


class Line:
    """A station's stream: capture measures and connector scores with natural noise."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)
        self.placement = np.random.default_rng(seed + 1)  # boards placed within +-25 px
        self.count = 0

    def board(
        self,
        gain: float = 1.0,
        blur: float = 1.0,
        turn: float = 0.0,
        shift: dict | None = None,
        move: float = 0.0,
    ) -> tuple[dict, dict]:
        rng = self.rng
        self.count += 1
        capture = {
            "brightness": 120.0 * gain * (1 + rng.normal(0, 0.005)),
            "contrast": 40.0 * gain * (1 + rng.normal(0, 0.01)),
            "sharpness": 0.5 * blur * (1 + rng.normal(0, 0.03)),
            "inliers": 0.8 + rng.normal(0, 0.03),
            "residual": 0.6 + rng.normal(0, 0.05),
            "offset": abs(rng.normal(0, 0.8)),
            "offset_x": move + self.placement.uniform(-25, 25),
            "offset_y": self.placement.uniform(-25, 25),
            "rotation": turn + rng.normal(0, 0.05),
            "scale": 1.0 + rng.normal(0, 0.0005),
        }
        rows = []
        for cid in CONNECTORS:
            score = rng.normal(SCORE_MEAN, SCORE_SD) + (shift or {}).get(cid, 0.0)
            evaluation = "NOK" if score >= 1.0 or rng.random() < 0.003 else "OK"
            rows.append({"id": cid, "evaluation": evaluation, "score": round(score, 4),
                         "model": {"version": VERSION}})  # fmt: skip
        return {"result_id": f"r{self.count}", "connectors": rows}, capture


def run(monitor: DriftMonitor, line: Line, boards: int, **change: object) -> list:
    """Feed `boards` boards; every state change, with the board number it came on."""
    changes = []
    for n in range(boards):
        verdict, capture = line.board(**change)  # type: ignore[arg-type]
        changes += [(n, c.row) for c in monitor.board(verdict, capture) if c.changed]
    return changes


@pytest.fixture
def monitor() -> DriftMonitor:
    return DriftMonitor(SETTINGS, reference, ("sha", IMAGE), CONNECTORS, {})


@pytest.fixture
def settled(monitor: DriftMonitor) -> tuple[DriftMonitor, Line]:
    """A monitor past its capture baseline on a clean stream."""
    line = Line(1)
    assert run(monitor, line, 200) == []
    return monitor, line


def test_stationary_noise_never_alarms_over_20000_boards(monitor: DriftMonitor) -> None:
    changes = run(monitor, Line(2), 20_000)
    assert [row["state"] for _, row in changes if row["state"] == "alarm"] == []
    assert len([row for _, row in changes if row["state"] == "warning"]) <= 1
    assert all(state["state"] == "ok" for state in monitor.summaries().values())


def test_a_light_change_is_one_capture_alarm_within_3_boards(settled: tuple) -> None:
    monitor, line = settled
    # Darker photos score every connector higher: still the capture alone is named.
    changes = run(monitor, line, 40, gain=0.7, shift=dict.fromkeys(CONNECTORS, 0.3))
    first, row = changes[0]
    assert first < 3 and row["subject"] == CAPTURE and row["state"] == "alarm"
    assert row["reason"].startswith("capture: brightness 0.70 x reference over")
    assert row["reason"].endswith("light changed")
    assert {row["subject"] for _, row in changes} == {CAPTURE}
    states = monitor.summaries()
    assert all(states[cid]["state"] == "ok" for cid in CONNECTORS)
    assert any("follows the capture change" in states[cid]["reason"] for cid in CONNECTORS)


@pytest.mark.parametrize(
    ("change", "measure", "cause"),
    [
        ({"blur": 0.3}, "sharpness", "out of focus"),
        ({"turn": 1.5}, "rotation", "camera moved"),
    ],
)
def test_focus_and_pose_are_named_as_such(
    settled: tuple, change: dict, measure: str, cause: str
) -> None:
    monitor, line = settled
    changes = run(monitor, line, 20, **change)
    first, row = changes[0]
    assert first < 5 and row["subject"] == CAPTURE and row["measure"] == measure
    assert row["reason"].endswith(cause)


LIGHT = ("brightness", "contrast")


@pytest.mark.parametrize(
    ("change", "measure", "cause"),
    [({"blur": 0.3}, ("sharpness",), "out of focus"), ({"gain": 0.7}, LIGHT, "light changed")],
)
def test_focus_and_light_read_in_turn_are_named_within_10_boards_and_never_alarm_clean(
    change: dict[str, float], measure: tuple[str, ...], cause: str
) -> None:
    """The agent's defaults (focus and light each on one photo in two, in turn): a photo
    without a measure leaves that test as it was, the others move."""
    monitor = DriftMonitor(SETTINGS, reference, ("sha", IMAGE), CONNECTORS, {})
    line = Line(5)

    def alternate(capture: dict) -> dict:
        focus, light = reads(
            line.count - 1, SETTINGS.focus_every_boards, SETTINGS.light_every_boards
        )
        for name in (() if focus else ("sharpness",)) + (() if light else LIGHT):
            del capture[name]
        return capture

    def feed(boards: int, **change: float) -> list:
        changes = []
        for _ in range(boards):
            verdict, capture = line.board(**change)
            board = monitor.board(verdict, alternate(capture))
            changes += [(line.count, c.row) for c in board if c.changed]
        return changes

    assert feed(3000) == []
    watch = monitor.watches[CAPTURE]
    assert isinstance(watch, CaptureWatch)
    tests = ("sharpness", *LIGHT)
    statistics = [(watch.up[m], watch.down[m], watch.runs[m]) for m in tests]
    verdict, capture = line.board(gain=0.9, blur=0.7)
    monitor.board(verdict, {m: v for m, v in capture.items() if m not in tests})
    assert [(watch.up[m], watch.down[m], watch.runs[m]) for m in tests] == statistics
    assert watch.runs["offset_x"] + watch.runs["rotation"] > 0  # the pose took the photo

    changes = feed(20, **change)
    assert changes, f"the {measure} change was not named"
    first, row = changes[0]
    assert first - 3001 <= 10 and row["subject"] == CAPTURE and row["measure"] in measure
    assert row["reason"].endswith(cause)


def test_a_slow_camera_move_inside_the_placement_spread_is_named(settled: tuple) -> None:
    """12 px over 300 boards, then held, where boards lie anywhere within +-25 px."""
    monitor, line = settled
    changes = []
    for n in range(500):
        verdict, capture = line.board(move=12.0 * min(1.0, (n + 1) / 300))
        changes += [(n, c.row) for c in monitor.board(verdict, capture) if c.changed]
    first, row = changes[0]
    assert first < 300 + 200 and row["subject"] == CAPTURE and row["measure"] == "offset_x"
    assert row["reason"].endswith("camera moved")


def test_an_unlucky_pose_baseline_does_not_alarm_a_still_camera() -> None:
    """Sixty lines, each its own 150-board baseline of a pose spread +-25 px, then 1500 clean
    boards: the estimates' errors are in the test, so none alarms (without them, with k = 0.5
    and the baseline's sd, 4 of these 60 lines alarm)."""
    alarms = 0
    for seed in range(60):
        watch = CaptureWatch("sha", IMAGE, SETTINGS)
        line = Line(100 + seed)
        for _ in range(SETTINGS.baseline_boards + 1500):
            alarms += watch.update(line.board()[1]) == 2
    assert alarms == 0


def test_a_restart_takes_the_pose_tests_up_as_they_were() -> None:
    watch, line = CaptureWatch("sha", IMAGE, SETTINGS), Line(7)
    for _ in range(SETTINGS.baseline_boards + 10):
        watch.update(line.board()[1])
    again = CaptureWatch("sha", IMAGE, SETTINGS)
    again.restore(json.loads(json.dumps(watch.detail())))
    assert (again.sd, again.k, again.thresholds) == (watch.sd, watch.k, watch.thresholds)


def test_a_restart_takes_up_the_recent_values_exactly_and_reads_rows_of_plain_lists(
    settled: tuple,
) -> None:
    """The series a reason's median is taken over are packed in the row (cheap to write every
    few boards); a row written before they were packed, as JSON lists, is read too."""
    monitor, line = settled
    run(monitor, line, 5)
    capture, connector = monitor.watches[CAPTURE], monitor.watches["J2"]
    again = CaptureWatch("sha", IMAGE, SETTINGS)
    again.restore(json.loads(json.dumps(capture.detail())))
    assert again.recent == capture.recent and again.recent[MEASURES[0]]
    as_lists = {**connector.detail(), "recent": list(connector.recent), "baseline": []}
    old = ConnectorWatch("J2", reference("J2"), SETTINGS)
    old.restore(json.loads(json.dumps(as_lists)))
    assert list(old.recent) == list(connector.recent) and old.recent


def test_one_connector_drifting_up_is_that_connector_within_30_boards(settled: tuple) -> None:
    monitor, line = settled
    changes = run(monitor, line, 120, shift={"J2": 0.3})
    alarms = [(n, row) for n, row in changes if row["state"] == "alarm"]
    first, row = alarms[0]
    assert first < 30 and row["subject"] == "J2" and row["measure"] == "scores_up"
    assert row["reason"].startswith("J2 scores: median 0.8") and "reference 0.50" in row["reason"]
    assert {row["subject"] for _, row in changes} == {"J2"}
    # the row states its deciding test's warning level (over the alarm level) for the chart
    assert 0 < json.loads(row["detail"])["warning_level"] < 1


def test_scores_drifting_down_are_found_too(settled: tuple) -> None:
    monitor, line = settled
    changes = run(monitor, line, 120, shift={"J1": -0.25})
    alarms = [(n, row) for n, row in changes if row["state"] == "alarm"]
    assert alarms and alarms[0][0] < 40 and alarms[0][1]["measure"] == "scores_down"


def test_a_state_clears_after_clear_after_boards_back_within_bounds(settled: tuple) -> None:
    monitor, line = settled
    run(monitor, line, 10, gain=0.7)
    assert monitor.summaries()[CAPTURE]["state"] == "alarm"
    back = run(monitor, line, 200)
    (when, row), *_ = back
    assert SETTINGS.clear_after_boards <= when + 1 < SETTINGS.clear_after_boards + 30
    assert row["state"] == "ok" and "back within bounds" in row["reason"]


def test_states_survive_a_restart_and_a_new_model_version_resets_its_connector(
    settled: tuple,
) -> None:
    monitor, line = settled
    run(monitor, line, 60, shift={"J3": 0.3})
    saved = {row["subject"]: row for row in monitor.rows()}
    again = DriftMonitor(SETTINGS, reference, ("sha", IMAGE), CONNECTORS, saved)
    assert again.summaries() == monitor.summaries()
    assert again.summaries()["J3"]["state"] == "alarm"

    installed = {"J1": VERSION, "J2": VERSION, "J3": "2026-02-01.1"}
    again.reference_of = lambda cid: reference(cid, installed[cid])
    (change,) = again.models(installed)
    assert change.changed and change.row["state"] == "ok"
    assert change.row["model_version"] == "2026-02-01.1"
    other = DriftMonitor(SETTINGS, reference, ("another image", IMAGE), CONNECTORS, saved)
    assert "learning" not in other.summaries()[CAPTURE]["reason"]
    assert "first 150 boards" in other.summaries()[CAPTURE]["reason"]  # a new capture reference


def test_a_bundle_without_quantiles_takes_its_reference_from_the_line() -> None:
    def old_bundle(connector: str) -> ModelReference:
        return ModelReference(VERSION, None, 0, 0.0)

    monitor = DriftMonitor(SETTINGS, old_bundle, ("sha", IMAGE), CONNECTORS, {})
    line = Line(3)
    run(monitor, line, 10)
    assert "(the bundle carries no OK score quantiles)" in monitor.summaries()["J1"]["reason"]
    assert run(monitor, line, 300) == []
    changes = run(monitor, line, 60, shift={"J1": 0.3})
    assert changes and changes[0][1]["subject"] == "J1"
    assert "(reference from the line)" in changes[0][1]["reason"]


def test_repeats_and_unscored_rows_do_not_count(monitor: DriftMonitor) -> None:
    verdict, capture = Line(4).board()
    monitor.board({**verdict, "duplicate_of": "r0"}, capture)
    errors = [{**row, "evaluation": "ERROR", "score": None} for row in verdict["connectors"]]
    monitor.board({**verdict, "connectors": errors}, None)
    assert {row["subject"]: row["boards"] for row in monitor.rows()} == dict.fromkeys(
        [CAPTURE, *CONNECTORS], 0
    )


def test_the_markov_chain_arl_matches_a_simulation() -> None:
    design = bernoulli_design(0.12, 50, 500)
    rng = np.random.default_rng(5)
    for threshold, stated in ((design.warning, 50), (design.alarm, 500)):
        runs = []
        for _ in range(600):
            statistic, boards = 0.0, 0
            while statistic < threshold:
                boards += 1
                statistic = design.step(statistic, rng.random() < design.p0)
            runs.append(boards)
        chain = bernoulli_arl(design.p0, design.up, design.down, threshold)
        assert chain >= stated and abs(np.mean(runs) - chain) < 0.15 * chain


def test_the_normal_arl_matches_a_simulation() -> None:
    rng = np.random.default_rng(6)
    k, h = 0.5, 3.0
    runs = []
    for _ in range(600):
        statistic, boards = 0.0, 0
        while statistic < h:
            boards += 1
            statistic = max(0.0, statistic + rng.normal() - k)
        runs.append(boards)
    assert abs(np.mean(runs) - normal_arl(k, h)) < 0.15 * normal_arl(k, h)
    warning, alarm = normal_thresholds(k, 1e5, 1e6)
    assert warning < alarm and normal_arl(k, alarm) >= 2e6


def test_the_in_control_rate_is_bounded_above_by_its_uncertainty() -> None:
    assert rate_upper_bound(0.1, 100) > rate_upper_bound(0.1, 1000) > 0.1


def test_blur_moves_sharpness_a_lot_and_light_does_not() -> None:
    rng = np.random.default_rng(8)
    image = cv2.GaussianBlur(rng.integers(0, 255, (480, 640), dtype=np.uint8), (3, 3), 0)
    centre = (319.5, 239.5)
    clean = photometric(gray_level(image), image, centre)
    blurred = cv2.GaussianBlur(image, (0, 0), 2)
    dark = (image * 0.7).astype(np.uint8)
    assert photometric(gray_level(blurred), blurred, centre)["sharpness"] < 0.3 * clean["sharpness"]
    darker = photometric(gray_level(dark), dark, centre)
    assert abs(darker["sharpness"] / clean["sharpness"] - 1) < 0.1
    assert darker["brightness"] / clean["brightness"] == pytest.approx(0.7, abs=0.01)
