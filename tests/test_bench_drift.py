"""The drift benchmark's parts without an agent: each change does what its name says to a
photo, and the report reads a message sequence into boards-to-warning/alarm and PASS/FAIL."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.benches.drift.plots import history_by_board, plot
from trainer.benches.drift.report import RAMP_LIMIT, STEP_LIMIT, judge, write_tables
from trainer.benches.drift.scenarios import (
    CHANGES,
    SHIFT_PX,
    TINT_FACTOR,
    TURN_DEG,
    Frame,
    Scenario,
    blur,
    gain,
    most_colourful,
    tint,
)

IDENTITY = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
NO_FRAME = Frame((0, 0, 1, 1), IDENTITY)


def photo(size: int = 160) -> np.ndarray:
    """A textured, coloured photo: random blocks of colour."""
    rng = np.random.default_rng(7)
    blocks = rng.integers(20, 236, (size // 8, size // 8, 3), dtype=np.uint8)
    return cv2.resize(blocks, (size, size), interpolation=cv2.INTER_NEAREST)


def marker(size: int, x: int, y: int) -> np.ndarray:
    image = np.zeros((size, size, 3), np.uint8)
    cv2.circle(image, (x, y), 3, (255, 255, 255), -1)
    return image


def centroid(image: np.ndarray) -> np.ndarray:
    grey = image[..., 0].astype(np.float64)
    ys, xs = np.indices(grey.shape)
    return np.array([(xs * grey).sum(), (ys * grey).sum()]) / grey.sum()


def test_gain_scales_every_pixel_and_clips_at_white() -> None:
    image = np.array([[[0, 100, 200]]], np.uint8)

    assert gain(image, 0.7).tolist() == [[[0, 70, 140]]]
    assert gain(image, 1.3).tolist() == [[[0, 130, 255]]]
    assert CHANGES["gain_down"].apply(image, 0.5, NO_FRAME).tolist() == [[[0, 85, 170]]]


def test_blur_lowers_the_laplacian_variance_and_more_with_more_strength() -> None:
    image = photo()

    def sharpness(im: np.ndarray) -> float:
        return float(cv2.Laplacian(cv2.cvtColor(im, cv2.COLOR_BGR2GRAY), cv2.CV_64F).var())

    half = CHANGES["blur"].apply(image, 0.5, NO_FRAME)
    full = CHANGES["blur"].apply(image, 1.0, NO_FRAME)

    assert sharpness(full) < sharpness(half) < sharpness(image)
    assert np.array_equal(blur(image, 0.0), image)


def test_the_turn_moves_a_marker_about_the_centre_by_the_stated_angle() -> None:
    size, x, y = 401, 350, 200  # marker 150 px right of the centre
    turned = CHANGES["turn"].apply(marker(size, x, y), 1.0, NO_FRAME)

    angle = np.radians(TURN_DEG)  # counter-clockwise on screen: the marker goes up
    expected = (200 + 150 * np.cos(angle), 200 - 150 * np.sin(angle))
    assert np.allclose(centroid(turned), expected, atol=0.3)


def test_the_shift_moves_a_marker_by_the_stated_pixels() -> None:
    shifted = CHANGES["shift"].apply(marker(101, 40, 50), 1.0, NO_FRAME)

    assert np.allclose(centroid(shifted), (40 + SHIFT_PX, 50), atol=0.1)


@pytest.mark.parametrize("change", ["turn", "shift"])
@pytest.mark.parametrize("strength", [0.1, 0.5, 1.0])
def test_a_turn_or_shift_moves_the_photo_without_softening_it(change: str, strength: float) -> None:
    rng = np.random.default_rng(3)
    noise = np.clip(rng.normal(128, 30, (120, 160, 3)), 0, 255).astype(np.uint8)
    image = cv2.GaussianBlur(noise, (0, 0), 1.0)  # grain as a lens and a JPEG leave it

    def sharpness(im: np.ndarray) -> float:
        grey = cv2.cvtColor(im, cv2.COLOR_BGR2GRAY)
        return float(cv2.Laplacian(grey, cv2.CV_64F)[10:-10, 10:-10].var())

    moved = CHANGES[change].apply(image, strength, NO_FRAME)

    assert sharpness(moved) > 0.95 * sharpness(image)


def test_the_tint_changes_one_channel_only_in_the_box_as_placed_in_the_photo() -> None:
    image = photo()
    moved = np.array([[1.0, 0.0, 16.0], [0.0, 1.0, 8.0]])  # the board lies 16 px right, 8 down
    box = (40, 48, 32, 24)

    tinted = CHANGES["tint"].apply(image, 1.0, Frame(box, moved, channel=1))

    changed = np.any(tinted != image, axis=2)
    ys, xs = np.nonzero(changed)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (56, 56 + 31, 56, 56 + 23)
    inside = np.s_[56:80, 56:88]
    assert np.array_equal(tinted[inside][..., [0, 2]], image[inside][..., [0, 2]])
    expected = np.clip(image[inside][..., 1] * TINT_FACTOR + 0.5, 0, 255).astype(np.uint8)
    assert np.array_equal(tinted[inside][..., 1], expected)
    assert np.array_equal(tint(image, box, moved, 1, 1.0), image)


def test_the_most_colourful_box_and_its_strongest_channel_are_chosen_for_the_tint() -> None:
    reference = np.full((60, 120, 3), 120, np.uint8)
    reference[10:30, 70:100] = (30, 60, 220)

    chosen = most_colourful(reference, {"J1": (5, 10, 30, 20), "J2": (70, 10, 30, 20)})

    assert chosen == ("J2", 2)


def test_a_step_is_full_from_the_change_and_a_ramp_reaches_full_on_its_last_board() -> None:
    step = Scenario("step-blur", "step", "blur", prefix=10, after=5)
    ramp = Scenario("ramp-blur", "ramp", "blur", prefix=10, ramp=4, after=3)

    assert [step.strength(i) for i in (9, 10, 14)] == [0.0, 1.0, 1.0]
    assert [ramp.strength(i) for i in range(9, 15)] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.0]
    assert (step.boards, step.reference_index) == (15, 10)
    assert (ramp.boards, ramp.reference_index) == (17, 13)


def message(subject: str, state: str, result_id: str | None, measure: str = "brightness") -> dict:
    return {"schema": "inspect.drift/1", "subject": subject, "state": state,
            "reason": f"{subject} {measure} moved", "measure": measure, "statistic": 1.2,
            "result_id": result_id}  # fmt: skip


BOARDS = {f"r{i}": i for i in range(1000)}


def test_a_step_reads_the_first_warning_and_alarm_in_boards_after_the_change() -> None:
    step = Scenario("step-gain_down", "step", "gain_down", prefix=100, after=100)
    messages = [
        message("capture", "ok", None),  # the state published at start
        message("J2", "warning", "r40", "scores_up"),  # in the clean prefix
        message("J2", "ok", "r90", "scores_up"),
        message("capture", "warning", "r103"),
        message("J5", "warning", "r105", "scores_down"),
        message("capture", "alarm", "r110"),
    ]

    row = judge(step, messages, BOARDS, tinted="J3")

    assert (row.warning_delay, row.warning_subject) == (4, "capture")
    assert (row.alarm_delay, row.alarm_subject, row.expected_delay) == (11, "capture", 11)
    assert (row.prefix_warnings, row.prefix_alarms) == (1, 0)
    assert [(n.subject, n.state, n.delay) for n in row.named] == [
        ("J5", "warning", 6),
        ("capture", "alarm", 11),
    ]
    assert row.passed


def test_an_alarm_later_than_the_limit_or_on_the_wrong_subject_fails() -> None:
    step = Scenario("step-tint", "step", "tint", prefix=100, after=100)
    late = [message("J3", "alarm", f"r{100 + STEP_LIMIT}", "scores_up")]
    wrong = [message("capture", "alarm", "r101")]
    in_time = [message("J3", "alarm", f"r{99 + STEP_LIMIT}", "scores_up")]

    assert judge(step, late, BOARDS, tinted="J3").expected_delay == STEP_LIMIT + 1
    assert not judge(step, late, BOARDS, tinted="J3").passed
    assert not judge(step, wrong, BOARDS, tinted="J3").passed
    assert judge(step, in_time, BOARDS, tinted="J3").passed


def test_a_warning_suffices_for_a_turn_but_not_for_a_blur() -> None:
    warned = [message("capture", "warning", "r120", "rotation")]

    turn = Scenario("step-turn", "step", "turn", prefix=100, after=100)
    blurred = Scenario("step-blur", "step", "blur", prefix=100, after=100)

    assert judge(turn, warned, BOARDS, tinted="J3").passed
    assert not judge(blurred, warned, BOARDS, tinted="J3").passed


def test_a_ramp_counts_from_its_end_and_an_alarm_during_the_ramp_is_early() -> None:
    ramp = Scenario("ramp-blur", "ramp", "blur", prefix=100, ramp=300, after=200)
    during = [message("capture", "alarm", "r300", "sharpness")]
    late = [message("capture", "alarm", f"r{400 + RAMP_LIMIT}", "sharpness")]

    early = judge(ramp, during, BOARDS, tinted="J3")
    assert early.alarm_delay == 300 - 399 + 1 and early.passed
    assert judge(ramp, late, BOARDS, tinted="J3").alarm_delay == RAMP_LIMIT + 2
    assert not judge(ramp, late, BOARDS, tinted="J3").passed


@pytest.mark.parametrize(
    ("states", "passed"),
    [([], True), (["warning"], True), (["warning", "warning"], False), (["alarm"], False)],
)
def test_the_clean_stream_allows_one_warning_and_no_alarm(states: list[str], passed: bool) -> None:
    clean = Scenario("clean", "clean", None, prefix=1000)
    messages = [message("capture", "ok", None)]
    for board, state in enumerate(states, 1):
        messages += [
            message("J1", state, f"r{board * 100}"),
            message("J1", "ok", f"r{board * 100 + 50}"),
        ]

    row = judge(clean, messages, BOARDS, tinted="J3")

    assert (row.warnings, row.alarms) == (states.count("warning"), states.count("alarm"))
    assert row.passed is passed


def test_the_tables_and_the_picture_are_written(tmp_path: Path) -> None:
    step = Scenario("step-blur", "step", "blur", prefix=20, after=20)
    row = judge(step, [message("capture", "alarm", "r25", "sharpness")], BOARDS, tinted="J3")
    times = [(f"2026-12-06T10:00:{i:02d}.000Z", i) for i in range(40)]
    history = [
        {"at": f"2026-12-06T10:00:{i:02d}.500Z", "subject": "capture", "measure": "sharpness",
         "statistic": 0.1 if i < 20 else 1.5, "state": "ok"}
        for i in range(0, 40, 10)
    ]  # fmt: skip

    series = history_by_board(history, times)
    paths = write_tables([row], {"prefix_boards": 20}, tmp_path)
    picture = plot(step, row, series, tmp_path / "plots" / "step-blur.png")

    assert series["capture"] == ([0, 10, 20, 30], [0.1, 0.1, 1.5, 1.5])
    assert json.loads(paths[1].read_text())["rows"][0]["alarm_delay"] == 6
    table_row = paths[2].read_text().splitlines()[2]
    assert table_row.startswith("| step blur sigma 2 px | 40 | 6 (capture) | 6 (capture) |")
    assert paths[0].read_text().splitlines()[1].startswith("step-blur,")
    assert cv2.imread(str(picture)) is not None
