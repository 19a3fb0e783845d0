"""Threshold choice from held-out scores: catch every KO when KO exist, a bounded limit when not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from trainer.calibration import CalibrationError, calibrate, conformal_rank, ok_only_threshold

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


def test_without_ko_and_few_scores_the_threshold_is_above_every_ok(
    ok_scores: np.ndarray,
) -> None:
    result = calibrate(ok_scores, np.array([]), TARGET)

    assert result.mode == "ok-only"
    assert result.raw_threshold > ok_scores.max()
    assert result.false_reject_rate == 0.0
    assert result.ko_recall is None
    assert (result.n_ok, result.n_ko) == (60, 0)
    assert "tail fit" in result.guarantee
    assert f"1/(n+1) = {1 / 61:.2%}" in result.guarantee


def test_with_enough_scores_the_threshold_is_the_conformal_quantile() -> None:
    ok = np.random.default_rng(3).gamma(4.0, size=799)

    result = calibrate(ok, np.array([]), TARGET)

    rank = math.ceil(800 * (1 - TARGET))  # 796: four scores lie above the threshold
    assert rank == conformal_rank(799, TARGET) == 796
    assert np.sort(ok)[rank - 1] < result.raw_threshold < np.sort(ok)[rank]
    assert result.false_reject_rate == pytest.approx(3 / 799)
    assert "796th lowest of 799" in result.guarantee


@pytest.mark.parametrize("n", [199, 400, 1000])
@pytest.mark.parametrize(
    "dist", [stats.norm(5, 1), stats.lognorm(0.5, scale=3), stats.gumbel_r(2, 0.5)], ids=str
)
def test_conformal_false_reject_is_within_its_bound_and_not_below_it_by_more_than_1_over_n(
    n: int, dist
) -> None:
    """Over many draws of n OK scores, the true false-reject of the chosen threshold averages
    within [target - 1/(n+1), target]: the bound holds and is not more conservative than needed."""
    rng = np.random.default_rng(n)
    rates = np.array(
        [dist.sf(ok_only_threshold(dist.rvs(n, random_state=rng), TARGET)[0]) for _ in range(3000)]
    )
    error = 4 * rates.std() / math.sqrt(len(rates))
    assert rates.mean() <= TARGET + error
    assert rates.mean() >= TARGET - 1 / (n + 1) - error


@pytest.mark.parametrize(
    "dist", [stats.norm(5, 1), stats.gamma(4.0), stats.gumbel_r(2, 0.5)], ids=str
)
def test_tail_fit_on_few_scores_lands_near_the_target_not_at_the_maximum(dist) -> None:
    """40 scores cannot set a 0.5 % quantile by counting; the exponential tail extrapolates it
    near the target, where the highest score alone would reject ~1/(n+1) = 2.4 % of good parts."""
    rng = np.random.default_rng(7)
    rates = np.array(
        [dist.sf(ok_only_threshold(dist.rvs(40, random_state=rng), TARGET)[0]) for _ in range(600)]
    )
    assert conformal_rank(40, TARGET) is None
    assert np.median(rates) <= TARGET
    assert rates.mean() <= 2 * TARGET
    assert np.median(rates) >= TARGET / 10


def test_out_of_fold_scores_widen_the_evidence_to_a_conformal_quantile(
    ok_scores: np.ndarray,
) -> None:
    extra = np.random.default_rng(5).normal(1.0, 0.1, 150)

    threshold, rule = ok_only_threshold(ok_scores, TARGET, cross_fit=extra)

    assert "(60 held-out + 150 out-of-fold)" in rule
    assert threshold > np.sort(np.concatenate([ok_scores, extra]))[-3]


@pytest.mark.parametrize("ok", [[], [1.0]])
def test_fewer_than_two_ok_scores_cannot_be_calibrated(ok: list[float]) -> None:
    with pytest.raises(CalibrationError, match=f"got {len(ok)}"):
        calibrate(np.array(ok), np.array([3.0]), TARGET)


def test_spread_adds_standard_deviations_of_the_ok_scores_above_the_quantile() -> None:
    ok = np.random.default_rng(9).normal(10.0, 0.5, 400)
    bare, _ = ok_only_threshold(ok, TARGET)

    result = calibrate(ok, np.array([]), TARGET, ok_only_spread=1.0)

    assert result.raw_threshold == pytest.approx(bare + ok.std(ddof=1))
    assert "+ 1 sd of the OK scores" in result.guarantee
