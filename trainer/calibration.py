"""Thresholds from held-out scores (never training scores), with or without KO examples.

Both modes return raw-score thresholds; the agent divides by it, so the limit is always 1.0.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge_agent.contracts.bundle import OK_QUANTILE_LEVELS, Calibration

TAIL_SHARE = 0.2
"""The top share of the OK scores that the tail fit uses."""
MIN_TAIL = 8
CENSORED_SHARE = 0.1
"""The top share of the tail sample that the fit counts only as "at least as high as the next
one down" (Type II censoring): one or two doubtful OK crops cannot set the line's threshold."""
FLOOR_FACTOR = 2.0
"""Whatever the shape of the OK tail, an OK-only limit promises at most this many times the
target false-reject (a split-conformal floor)."""


class CalibrationError(ValueError):
    """Not enough held-out data to choose a threshold."""


def conformal_rank(n: int, false_reject: float) -> int | None:
    """1-based rank of the split-conformal threshold among `n` OK scores, None if `n` is too few.

    For a new OK score exchangeable with them, P(score > the k-th smallest) = 1 - k/(n+1), so the
    smallest k with 1 - k/(n+1) <= `false_reject` bounds the false reject without overshooting it
    by more than 1/(n+1).
    """
    rank = math.ceil((n + 1) * (1.0 - false_reject) - 1e-9)
    return rank if rank <= n else None


def tail_quantile(
    scores: np.ndarray, false_reject: float, confidence: float | None = None
) -> tuple[float, int]:
    """The (1 - `false_reject`) quantile extrapolated from an exponential fit of the top scores.

    Peaks over threshold: the excesses of the top `TAIL_SHARE` (at least `MIN_TAIL`) of the
    scores over the next one down are fitted with an exponential (a generalised Pareto of shape
    0: light and medium tails such as normal, gamma or Gumbel scores), the highest
    `CENSORED_SHARE` of them censored at the next one down. With `confidence`, the tail's scale
    is its upper confidence bound (for r uncensored excesses of total T, 2T / scale follows a
    chi-square law with 2r degrees of freedom), so the quantile's false reject is at most the
    target with that confidence when the tail is exponential. Returns the quantile and how many
    scores the fit used.
    """
    ordered = np.sort(scores)
    n = len(ordered)
    size = min(n - 1, max(MIN_TAIL, math.ceil(TAIL_SHARE * n)))
    base = ordered[n - size - 1]
    exceedances = ordered[n - size :] - base
    if np.ptp(exceedances) <= 0:
        return float(ordered[-1]), size
    # Exponential tail (GPD shape 0), Type II censored: the scale's maximum-likelihood estimate
    # is the total excess, the censored ones counted at the censoring point, over the
    # uncensored count (unbiased for an exponential tail, as the plain mean is).
    censored = math.ceil(CENSORED_SHARE * size)
    kept = exceedances[: size - censored]
    total = float(kept.sum() + censored * kept[-1])
    scale = total / len(kept)
    if confidence is not None:
        from scipy.stats import chi2  # here: scipy's import probes for torch, a training extra

        scale = 2 * total / float(chi2.ppf(1.0 - confidence, 2 * len(kept)))
    return float(base + scale * math.log(size / (false_reject * n))), size


def ok_only_threshold(
    ok_scores: np.ndarray,
    target_false_reject: float,
    cross_fit: np.ndarray | None = None,
    margin: float = 0.0,
    spread: float = 0.0,
    confidence: float | None = None,
) -> tuple[float, str]:
    """A threshold for a target false-reject rate from OK scores alone, and the rule that set it.

    The target quantile is extrapolated from the shape of the OK tail (`tail_quantile`) rather
    than read off one order statistic: with a few hundred scores the split-conformal quantile for
    0.5 % is the single highest score, so one doubtful OK crop in the training set moves the
    threshold by several of the OK scores' standard deviations. The fit is never below a
    distribution-free floor: the split-conformal quantile for `FLOOR_FACTOR` times the target
    (with too few scores for it, the highest score). `cross_fit` adds out-of-fold OK scores of
    models trained on part of the training set; they run at least as high as the full model's,
    which keeps the bound on the safe side. `confidence` takes the tail's scale at its upper
    confidence bound: the margin above the point estimate is what a few hundred scores leave
    unknown, and it shrinks as scores accumulate. `spread` adds that many standard deviations
    of the OK scores and `margin` a guard band (a fraction of the threshold), both optional.
    """
    held_out = len(ok_scores)
    if cross_fit is not None and len(cross_fit):
        ok_scores = np.concatenate([ok_scores, cross_fit])
    n = len(ok_scores)
    if n < 2:
        raise CalibrationError(f"need at least 2 held-out OK scores, got {n}")
    ordered = np.sort(np.asarray(ok_scores, np.float64))
    pooled = f" ({held_out} held-out + {n - held_out} out-of-fold)" if n > held_out else ""
    quantile, used = tail_quantile(ordered, target_false_reject, confidence)
    floor_target = FLOOR_FACTOR * target_false_reject
    rank = conformal_rank(n, floor_target) or n
    floor = float(ordered[rank - 1])
    limit = max(quantile, floor)
    floor_rule = (
        f"the split-conformal quantile for {floor_target:.2%}, the {rank}th lowest"
        if rank < n
        else "the highest"
    )
    bound = (
        f" with {confidence:.0%} confidence (the tail's scale at its upper {confidence:.0%} "
        "confidence bound)"
        if confidence is not None
        else ""
    )
    rule = (
        f"tail fit: exponential tail of the highest {used} of {n} OK scores{pooled} (the top "
        f"{math.ceil(CENSORED_SHARE * used)} censored), "
        f"extrapolated to the {target_false_reject:.2%} target{bound}, which holds if the OK "
        f"tail is no heavier than exponential; never below {floor_rule} of them, so that "
        f"whatever the tail, expected false-reject <= 1 - {rank}/(n+1) = "
        f"{1.0 - rank / (n + 1):.2%} "
        f"(distribution-free; {'the fit' if quantile >= floor else 'this floor'} set the limit)"
    )
    band = spread * float(np.std(ordered, ddof=1))
    threshold = (float(np.nextafter(limit, np.inf)) + band) * (1.0 + margin)
    if spread:
        rule += f"; + {spread:g} sd of the OK scores ({band:.4g}) for drift"
    return threshold, rule + (f"; + {margin:.0%} guard band" if margin else "")


def ok_quantiles(ok_scores: np.ndarray) -> list[float] | None:
    """The held-out OK scores at `OK_QUANTILE_LEVELS` (raw scale), the drift test's reference;
    None without scores."""
    if not len(ok_scores):
        return None
    return [float(q) for q in np.quantile(ok_scores, OK_QUANTILE_LEVELS)]


def calibrate(
    ok_scores: np.ndarray,
    ko_scores: np.ndarray,
    target_false_reject: float,
    cross_fit: np.ndarray | None = None,
    ok_only_margin: float = 0.0,
    ko_side: float = 0.25,
    ok_only_spread: float = 0.0,
    ok_only_confidence: float | None = None,
) -> Calibration:
    """Choose the raw threshold: catch every held-out KO at the lowest false-reject, or OK-only.

    When held-out OK and KO are separated, every threshold in the gap has the same (lowest)
    false-reject; it is placed at `ko_side` of the way from the OK limit to the weakest KO on a
    log scale. A few held-out KO rarely include the weakest defect the line will see, so the
    default leans towards the OK side while keeping most of the OK limit's headroom.
    """
    ok_scores = np.asarray(ok_scores, np.float64)
    ko_scores = np.asarray(ko_scores, np.float64)
    if len(ko_scores) == 0:
        ok_threshold, rule = ok_only_threshold(
            ok_scores,
            target_false_reject,
            cross_fit=cross_fit,
            margin=ok_only_margin,
            spread=ok_only_spread,
            confidence=ok_only_confidence,
        )
        return Calibration(
            mode="ok-only",
            raw_threshold=ok_threshold,
            n_ok=len(ok_scores),
            n_ko=0,
            false_reject_rate=float(np.mean(ok_scores >= ok_threshold)),
            target_false_reject=target_false_reject,
            guarantee=(
                f"no KO available: threshold by {rule}. "
                "Recall on KO is unknown until KO examples are collected."
            ),
            ok_quantiles=ok_quantiles(ok_scores),
        )
    ok_threshold, rule = ok_only_threshold(ok_scores, target_false_reject)
    weakest_ko = float(ko_scores.min())
    if weakest_ko > ok_threshold:
        # Separated: sit in the gap, `ko_side` of the way to the weakest KO (log scale).
        threshold = math.exp(
            (1.0 - ko_side) * math.log(ok_threshold) + ko_side * math.log(weakest_ko)
        )
        guarantee = (
            f"every one of {len(ko_scores)} held-out KO scores above the threshold, which lies "
            f"{ko_side:.0%} of the way (log scale) from the OK limit to the weakest KO "
            f"(OK limit by {rule})"
        )
    else:
        # Overlap: catching every KO wins; the false-reject this costs is reported.
        threshold = weakest_ko
        guarantee = (
            f"KO and OK held-out scores overlap: threshold at the weakest of {len(ko_scores)} "
            "KO catches them all at the false-reject reported"
        )
    return Calibration(
        mode="ko",
        raw_threshold=threshold,
        n_ok=len(ok_scores),
        n_ko=len(ko_scores),
        false_reject_rate=float(np.mean(ok_scores >= threshold)),
        ko_recall=float(np.mean(ko_scores >= threshold)),
        margin=(weakest_ko - float(ok_scores.max())) / threshold,
        target_false_reject=target_false_reject,
        guarantee=guarantee,
        ok_quantiles=ok_quantiles(ok_scores),
    )


REVIEW_SHARE = 0.8
"""Operators confirm every NOK and every OK scoring at least this share of the threshold."""


@dataclass(frozen=True)
class LineScores:
    """One connector's scores at the line under one model version, on that version's scale
    (1.0 = its threshold), and what the operators confirmed: 'OK', 'KO' or '' (not confirmed)."""

    scores: np.ndarray
    labels: np.ndarray

    @property
    def n_confirmed(self) -> int:
        return int(np.count_nonzero(self.labels != ""))


@dataclass(frozen=True)
class LineCalibration:
    """A threshold from the line's own scores, on the same scale as the scores it came from."""

    threshold: float
    n_ok: int
    n_ko: int
    n_confirmed: int
    false_reject: float
    false_reject_bound: float
    confidence: float
    ko_recall: float | None
    guarantee: str


def binomial_upper(events: int, trials: int, confidence: float) -> float:
    """Clopper-Pearson upper bound of a rate seen `events` times in `trials`, at `confidence`."""
    from scipy.stats import beta  # here: scipy's import probes for torch, a training extra

    if events >= trials:
        return 1.0
    return float(beta.ppf(confidence, events + 1, trials - events))


def line_threshold(
    line: LineScores,
    target_false_reject: float,
    confidence: float,
    min_ok: int,
    review_share: float = REVIEW_SHARE,
) -> LineCalibration | None:
    """A threshold at the target false reject from the line's scores, or None on too few.

    What counts as OK: every score not confirmed KO. Above the review line every NOK and the
    borderline OK are confirmed, so the OK tail there is known; an unconfirmed score is counted
    as OK (an unreviewed NOK raises the threshold: the safe side), and so is a KO that escaped
    below the review line (it can only raise the threshold too). The OK-only rule of
    `ok_only_threshold` (exponential tail fit, split-conformal floor for twice the target) is
    applied to those scores, now thousands from the line instead of a few hundred from training,
    and the false reject it gives is bounded at `confidence` (Clopper-Pearson on the same
    scores). Below `min_ok` OK scores nothing changes.
    """
    scores = np.asarray(line.scores, np.float64)
    labels = np.asarray(line.labels)
    ok = scores[labels != "KO"]
    ko = scores[labels == "KO"]
    if len(ok) < max(2, min_ok):
        return None
    threshold, rule = ok_only_threshold(ok, target_false_reject)
    rejects = int(np.count_nonzero(ok >= threshold))
    bound = binomial_upper(rejects, len(ok), confidence)
    recall = float(np.mean(ko >= threshold)) if len(ko) else None
    reviewed = (
        f"{line.n_confirmed} confirmed by operators ({len(ko)} KO); scores not confirmed KO "
        f"counted as OK, KO that escaped below the review line ({review_share:.0%} of the "
        "threshold) included, which only raises the threshold"
    )
    guarantee = (
        f"from the line: {len(ok)} OK scores, {reviewed}; threshold by {rule}; "
        f"false reject on these scores {rejects}/{len(ok)}, at most {bound:.2%} with "
        f"{confidence:.0%} confidence"
    )
    if recall is not None:
        guarantee += f"; {recall:.0%} of the {len(ko)} confirmed KO above it"
    return LineCalibration(
        threshold=threshold,
        n_ok=len(ok),
        n_ko=len(ko),
        n_confirmed=line.n_confirmed,
        false_reject=rejects / len(ok),
        false_reject_bound=bound,
        confidence=confidence,
        ko_recall=recall,
        guarantee=guarantee,
    )
