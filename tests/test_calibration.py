"""Threshold choice from held-out scores: catch every KO when KO exist, a bounded limit when not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from trainer.calibration import (
    FLOOR_FACTOR,
    CalibrationError,
    calibrate,
    conformal_rank,
    ok_only_threshold,
    tail_quantile,
)

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
    assert "never below the highest" in result.guarantee
    assert f"1 - 60/(n+1) = {1 / 61:.2%}" in result.guarantee


def test_with_enough_scores_the_limit_is_the_tail_fit_above_the_conformal_floor() -> None:
    ok = np.random.default_rng(3).gamma(4.0, size=799)

    result = calibrate(ok, np.array([]), TARGET)

    fitted, used = tail_quantile(np.sort(ok), TARGET)
    rank = math.ceil(800 * (1 - FLOOR_FACTOR * TARGET))  # 792: the floor for twice the target
    assert rank == conformal_rank(799, FLOOR_FACTOR * TARGET) == 792
    assert fitted > np.sort(ok)[rank - 1]
    assert result.raw_threshold == pytest.approx(fitted)
    assert f"highest {used} of 799" in result.guarantee
    assert "792th lowest" in result.guarantee
    assert f"1 - 792/(n+1) = {8 / 800:.2%}" in result.guarantee
    assert "the fit set the limit" in result.guarantee


def test_a_cluster_of_high_ok_scores_raises_the_limit_to_the_conformal_floor() -> None:
    """19 of 799 OK scores far above the rest: an exponential fit of the top 20 % puts the 0.5 %
    quantile below them, but the floor keeps the false reject within twice the target."""
    ok = np.r_[np.random.default_rng(4).normal(0.0, 1.0, 780), np.full(19, 10.0)]

    threshold, rule = ok_only_threshold(ok, TARGET)

    assert tail_quantile(np.sort(ok), TARGET)[0] < 10.0 < threshold
    assert np.mean(ok >= threshold) == 0.0
    assert "this floor set the limit" in rule


def _true_false_reject(dist, n: int, draws: int, seed: int) -> np.ndarray:
    """The exact false-reject rate, under `dist`, of the bare OK-only limit over `draws` sets."""
    rng = np.random.default_rng(seed)
    return np.array(
        [dist.sf(ok_only_threshold(dist.rvs(n, random_state=rng), TARGET)[0]) for _ in range(draws)]
    )


def _false_reject_with_confidence(
    dist, n: int, draws: int, seed: int, confidence: float | None
) -> np.ndarray:
    """The exact false reject, under `dist`, of the bare OK-only limit at `confidence`."""
    rng = np.random.default_rng(seed)
    return np.array(
        [
            dist.sf(
                ok_only_threshold(dist.rvs(n, random_state=rng), TARGET, confidence=confidence)[0]
            )
            for _ in range(draws)
        ]
    )


@pytest.mark.parametrize("n", [200, 1000])
@pytest.mark.parametrize("dist", [stats.expon(), stats.gamma(4.0), stats.gumbel_r(2, 0.5)], ids=str)
def test_with_a_confidence_the_target_holds_at_least_that_often(n: int, dist) -> None:
    """The tail's scale at its upper 90 % bound: over many training sets from an exponential-type
    tail, the limit's true false reject is within the target in about 90 % of them (the point
    estimate: about half, on a pure exponential); the bound costs less as scores accumulate."""
    draws = 800
    with_bound = _false_reject_with_confidence(dist, n, draws, n + 7, 0.9)
    point = _false_reject_with_confidence(dist, n, draws, n + 7, None)
    error = 3 * math.sqrt(0.9 * 0.1 / draws)
    assert np.mean(with_bound <= TARGET) >= 0.9 - error
    assert np.mean(with_bound <= TARGET) > np.mean(point <= TARGET)
    assert (with_bound <= point).all()


def test_the_confidence_margin_shrinks_as_scores_accumulate() -> None:
    """The same tail seen in 200 and in 5000 scores: the bound's margin over the point estimate,
    in sd of the scores, is several times smaller with more evidence; the rule says it."""
    rng = np.random.default_rng(21)
    margins = []
    for n in (200, 5000):
        ok = rng.gamma(4.0, size=n)
        bounded, rule = ok_only_threshold(ok, TARGET, confidence=0.9)
        margins.append((bounded - tail_quantile(np.sort(ok), TARGET)[0]) / ok.std())
        assert "target with 90% confidence" in rule
    assert margins[0] > 0 and margins[1] > 0
    assert margins[1] < margins[0] / 3


@pytest.mark.parametrize("n", [200, 400, 1000])
@pytest.mark.parametrize("dist", [stats.gamma(4.0), stats.gumbel_r(2, 0.5)], ids=str)
def test_on_exponential_tails_the_false_reject_is_the_target_not_far_below(n: int, dist) -> None:
    """Over many draws of n OK scores from an exponential-type tail, the true false reject of the
    limit averages at most the target, and at least half of it: not more conservative than the
    bound needs."""
    rates = _true_false_reject(dist, n, 3000, n)
    error = 4 * rates.std() / math.sqrt(len(rates))
    assert TARGET / 2 <= rates.mean() <= TARGET + error


@pytest.mark.parametrize("dist", [stats.norm(5, 1), stats.gamma(4.0), stats.gumbel_r(2, 0.5)])
def test_the_fit_varies_less_than_the_highest_score_it_replaces(dist) -> None:
    """With 200 scores the split-conformal quantile for 0.5 % is the highest score; the tail fit
    uses the top 40 and misses the target by less from one training set to the next."""
    rates = _true_false_reject(dist, 200, 2000, 1)
    rng = np.random.default_rng(1)
    highest = np.array([dist.sf(dist.rvs(200, random_state=rng).max()) for _ in range(2000)])
    assert conformal_rank(200, TARGET) == 200
    assert np.percentile(rates, 90) < np.percentile(highest, 90)
    assert np.abs(rates - TARGET).mean() < np.abs(highest - TARGET).mean()


@pytest.mark.parametrize("n", [200, 1000])
@pytest.mark.parametrize(
    "dist", [stats.lognorm(0.5, scale=3), stats.t(5), stats.pareto(1.0)], ids=str
)
def test_on_heavier_tails_the_distribution_free_floor_still_bounds_the_false_reject(
    n: int, dist
) -> None:
    """A tail heavier than exponential breaks the fit's assumption; the split-conformal floor
    still keeps the expected false reject within 1 - k/(n+1) <= twice the target."""
    rates = _true_false_reject(dist, n, 3000, n + 1)
    error = 4 * rates.std() / math.sqrt(len(rates))
    rank = conformal_rank(n, FLOOR_FACTOR * TARGET)
    assert rank is not None
    assert rates.mean() <= 1 - rank / (n + 1) + error


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
