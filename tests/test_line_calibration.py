"""The threshold from the line's scores: bounded false reject under contamination and partial
labels, no move on too few scores, and the two-day line simulation of `bench-quality --line`."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.calibration import REVIEW_SHARE, LineScores, binomial_upper, line_threshold
from trainer.studies.line_days import LineSettings, one_run, simulate

TARGET = 0.005


def line_day(
    rng: np.random.Generator,
    n_ok: int,
    ko_share: float,
    confirm_share: float,
    ok_scale: float = 0.25,
) -> tuple[LineScores, np.ndarray]:
    """A day at the line on the current version's scale: gamma OK scores, KO a few percent of
    them spread from far below to far above the threshold (escapes included); every NOK and a
    share `confirm_share` of the borderline OK confirmed, nothing below the review line."""
    ok = rng.gamma(4.0, ok_scale / 4.0 * 2, n_ok) * 0.5
    n_ko = int(ko_share * n_ok)
    ko = rng.uniform(0.2, 3.0, n_ko)
    scores = np.concatenate([ok, ko])
    truth = np.array(["OK"] * n_ok + ["KO"] * n_ko)
    reviewed = (scores >= 1.0) | (
        (scores >= REVIEW_SHARE) & (rng.random(len(scores)) < confirm_share)
    )
    labels = np.where(reviewed, truth, "")
    return LineScores(scores, labels), ok


@pytest.mark.parametrize("ko_share", [0.0, 0.03, 0.1])
@pytest.mark.parametrize("confirm_share", [1.0, 0.5, 0.0])
def test_false_reject_on_new_ok_scores_stays_within_twice_the_target(
    ko_share: float, confirm_share: float
) -> None:
    rng = np.random.default_rng(int(ko_share * 100) + int(confirm_share * 10))
    rates = []
    for _ in range(40):
        line, _ = line_day(rng, 3000, ko_share, confirm_share)
        found = line_threshold(line, TARGET, 0.9, 100)
        assert found is not None
        fresh_ok = rng.gamma(4.0, 0.25 / 4.0 * 2, 20000) * 0.5  # the next day's OK
        rates.append(np.mean(fresh_ok >= found.threshold))
        assert found.false_reject_bound >= found.false_reject
    # The split-conformal floor at twice the target bounds the expected false reject whatever
    # the tail; KO counted as OK (escapes, unconfirmed NOK) only push the threshold up.
    assert np.mean(rates) <= 2 * TARGET
    assert np.mean(rates) > 0  # and it is not the maximum of everything seen


def test_unconfirmed_nok_raise_the_threshold_confirmed_ko_do_not() -> None:
    rng = np.random.default_rng(7)
    line, _ = line_day(rng, 3000, 0.05, 1.0)
    everything_confirmed = line_threshold(line, TARGET, 0.9, 100)
    nothing_confirmed = line_threshold(
        LineScores(line.scores, np.full(len(line.scores), "")), TARGET, 0.9, 100
    )
    assert everything_confirmed is not None and nothing_confirmed is not None
    assert nothing_confirmed.threshold > everything_confirmed.threshold
    assert everything_confirmed.n_ko == int(np.count_nonzero(line.labels == "KO"))
    assert everything_confirmed.ko_recall is not None and nothing_confirmed.ko_recall is None


def test_too_few_ok_scores_change_nothing() -> None:
    rng = np.random.default_rng(3)
    line, _ = line_day(rng, 95, 0.1, 1.0)  # confirmed KO do not count, escapes do
    assert np.count_nonzero(line.labels != "KO") < 100
    assert line_threshold(line, TARGET, 0.9, 100) is None
    line, _ = line_day(rng, 100, 0.0, 1.0)
    assert line_threshold(line, TARGET, 0.9, 100) is not None


def test_the_guarantee_names_what_the_threshold_rests_on() -> None:
    line, _ = line_day(np.random.default_rng(5), 2000, 0.05, 1.0)
    found = line_threshold(line, TARGET, 0.9, 100)
    assert found is not None
    assert f"from the line: {found.n_ok} OK scores" in found.guarantee
    assert f"{found.n_confirmed} confirmed by operators" in found.guarantee
    assert "with 90% confidence" in found.guarantee
    assert found.false_reject_bound == pytest.approx(
        binomial_upper(round(found.false_reject * found.n_ok), found.n_ok, 0.9)
    )


def test_binomial_upper_bound_covers_the_rate() -> None:
    rng = np.random.default_rng(11)
    covered = [binomial_upper(int(rng.binomial(500, 0.01)), 500, 0.9) >= 0.01 for _ in range(2000)]
    assert np.mean(covered) >= 0.9
    assert binomial_upper(0, 500, 0.9) == pytest.approx(1 - 0.1 ** (1 / 500))


def test_two_days_at_the_line_recover_what_a_cautious_first_threshold_threw_away() -> None:
    rng = np.random.default_rng(2)
    # A first threshold far too cautious: OK scores end around 0.6 of it, KO spread above them.
    ok = rng.gamma(9.0, 0.04, 4000)
    ko = rng.uniform(0.3, 1.6, 800)
    run = one_run(ok, ko, LineSettings(), seed=0)
    assert run["recalibrated"]
    assert run["day2_threshold"] < 1.0
    assert run["day2_recall"] > run["day1_recall"]
    assert run["day2_false_reject"] <= 2 * TARGET
    summary = simulate(ok, ko, LineSettings(), runs=5)
    assert summary["recalibrated_runs"] == 5
    assert summary["day1_recall"] < summary["day2_recall"] <= summary["day2_best_recall"] + 0.05
    assert summary["day2_false_reject"] <= 2 * TARGET


def test_a_day_too_short_keeps_the_first_threshold() -> None:
    rng = np.random.default_rng(4)
    run = one_run(rng.gamma(9.0, 0.04, 150), rng.uniform(0.3, 1.6, 40), LineSettings(), seed=1)
    assert not run["recalibrated"] and run["day2_threshold"] == 1.0
