"""Threshold choice from held-out scores: catch every KO when KO exist, a bounded limit when not."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.calibration import CalibrationError, calibrate

TARGET = 0.005


@pytest.fixture
def ok_scores() -> np.ndarray:
    return np.random.default_rng(11).normal(1.0, 0.1, 60).clip(0.5)


def test_separated_ko_sits_between_ok_and_the_weakest_ko(ok_scores: np.ndarray) -> None:
    ko = np.array([2.2, 3.0, 4.5, 2.6])

    result = calibrate(ok_scores, ko, TARGET)

    assert result.mode == "ko"
    assert (ko >= result.raw_threshold).all()
    assert not (ok_scores >= result.raw_threshold).any()
    assert result.margin is not None and result.margin > 0
    assert (result.ko_recall, result.false_reject_rate) == (1.0, 0.0)
    assert (result.n_ok, result.n_ko) == (60, 4)


@pytest.mark.parametrize("ko_side", [0.0, 0.25, 0.5, 1.0])
def test_ko_side_places_the_threshold_in_the_gap_on_a_log_scale(
    ok_scores: np.ndarray, ko_side: float
) -> None:
    ko = np.array([2.2, 3.0])
    ok_limit = calibrate(ok_scores, np.array([]), TARGET).raw_threshold

    result = calibrate(ok_scores, ko, TARGET, ko_side=ko_side)

    expected = ok_limit ** (1 - ko_side) * 2.2**ko_side
    assert result.raw_threshold == pytest.approx(expected)
    assert f"{ko_side:.0%} of the way" in result.guarantee


def test_overlap_puts_the_threshold_at_the_weakest_ko(ok_scores: np.ndarray) -> None:
    ko = np.array([1.05, 1.6, 2.4])  # the weakest KO scores like an ordinary OK board

    result = calibrate(ok_scores, ko, TARGET)

    assert result.mode == "ko"
    assert result.raw_threshold == pytest.approx(1.05)
    assert result.ko_recall == 1.0
    expected_frr = float(np.mean(ok_scores >= 1.05))
    assert 0 < expected_frr < 1
    assert result.false_reject_rate == pytest.approx(expected_frr)
    assert result.margin is not None and result.margin < 0
    assert "overlap" in result.guarantee


def test_without_ko_the_threshold_is_above_every_ok(ok_scores: np.ndarray) -> None:
    result = calibrate(ok_scores, np.array([]), TARGET)

    assert result.mode == "ok-only"
    assert result.raw_threshold >= ok_scores.max()
    assert result.false_reject_rate == 0.0
    assert result.ko_recall is None
    assert (result.n_ok, result.n_ko) == (60, 0)
    assert "1/(n+1)" in result.guarantee
    assert f"{1 / 61:.2%}" in result.guarantee


def test_without_ko_a_wide_ok_spread_raises_the_threshold_past_the_maximum() -> None:
    """With few OK scores, mean + z * sd for a 0.5 % target exceeds the highest of them."""
    ok = np.array([1.0, 1.1, 0.9, 1.3, 0.7])

    result = calibrate(ok, np.array([]), TARGET)

    assert result.raw_threshold > ok.max()
    assert result.raw_threshold == pytest.approx(ok.mean() + 2.5758 * ok.std(ddof=1), rel=1e-3)


@pytest.mark.parametrize("ok", [[], [1.0]])
def test_fewer_than_two_ok_scores_cannot_be_calibrated(ok: list[float]) -> None:
    with pytest.raises(CalibrationError, match=f"got {len(ok)}"):
        calibrate(np.array(ok), np.array([3.0]), TARGET)
