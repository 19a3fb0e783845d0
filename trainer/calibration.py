"""Thresholds from held-out scores (never training scores), with or without KO examples.

Both modes return raw-score thresholds; the agent divides by it, so the limit is always 1.0.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np

from edge_agent.contracts.bundle import Calibration


class CalibrationError(ValueError):
    """Not enough held-out data to choose a threshold."""


def ok_only_threshold(
    ok_scores: np.ndarray,
    target_false_reject: float,
    cross_fit: np.ndarray | None = None,
    margin: float = 0.0,
) -> tuple[float, str]:
    """A threshold for a target false-reject rate from OK scores alone, and what it guarantees.

    It is never below the highest held-out OK score, so the distribution-free (conformal)
    bound holds: expected false-reject <= 1/(n+1). The target itself is met under a normal
    fit of the held-out scores (mean + z * std), which this also never goes below.
    `cross_fit` adds out-of-fold OK scores of models trained on part of the training set;
    they run higher than the full model's, so pooling them keeps the threshold on the safe side.
    `margin` is a guard band on top (structural defects score far above OK crops).
    """
    held_out = len(ok_scores)
    if cross_fit is not None and len(cross_fit):
        ok_scores = np.concatenate([ok_scores, cross_fit])
    n = len(ok_scores)
    if n < 2:
        raise CalibrationError(f"need at least 2 held-out OK scores, got {n}")
    z = NormalDist().inv_cdf(1.0 - target_false_reject)
    parametric = float(np.mean(ok_scores) + z * np.std(ok_scores, ddof=1))
    threshold = max(float(np.max(ok_scores)), parametric) * (1.0 + margin)
    bound = 1.0 / (n + 1)
    pooled = f" ({held_out} held-out + {n - held_out} out-of-fold)" if n > held_out else ""
    guarantee = (
        f"no KO available: threshold = max(highest of {n} OK scores{pooled}, "
        f"mean + {z:.2f} sd) + {margin:.0%} guard band. "
        f"Distribution-free: expected false-reject <= 1/(n+1) = {bound:.2%}"
        f"; target {target_false_reject:.2%} holds if OK scores are near-normal. "
        "Recall on KO is unknown until KO examples are collected."
    )
    return threshold, guarantee


def calibrate(
    ok_scores: np.ndarray,
    ko_scores: np.ndarray,
    target_false_reject: float,
    cross_fit: np.ndarray | None = None,
    ok_only_margin: float = 0.0,
    ko_side: float = 0.25,
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
        ok_threshold, ok_guarantee = ok_only_threshold(
            ok_scores, target_false_reject, cross_fit, ok_only_margin
        )
        return Calibration(
            mode="ok-only",
            raw_threshold=ok_threshold,
            n_ok=len(ok_scores),
            n_ko=0,
            false_reject_rate=float(np.mean(ok_scores >= ok_threshold)),
            target_false_reject=target_false_reject,
            guarantee=ok_guarantee,
        )
    ok_threshold, ok_guarantee = ok_only_threshold(ok_scores, target_false_reject)
    weakest_ko = float(ko_scores.min())
    if weakest_ko > ok_threshold:
        # Separated: sit in the gap, `ko_side` of the way to the weakest KO (log scale).
        threshold = math.exp(
            (1.0 - ko_side) * math.log(ok_threshold) + ko_side * math.log(weakest_ko)
        )
        guarantee = (
            f"every one of {len(ko_scores)} held-out KO scores above the threshold, which lies "
            f"{ko_side:.0%} of the way (log scale) from the OK limit to the weakest KO "
            f"({ok_guarantee.split(': ', 1)[1].split('.')[0]})"
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
    )
