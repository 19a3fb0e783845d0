"""Evaluation metrics on the calibrated scale: image-level (sklearn) and pixel-level AUROC / PRO."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

PRO_MAX_FPR = 0.3
PRO_THRESHOLDS = 200


def image_metrics(labels: np.ndarray, scores: np.ndarray, threshold: float = 1.0) -> dict:
    """Image-level metrics for labels 1=KO 0=OK; a value the data cannot define is None."""
    labels, scores = _check_image_inputs(labels, scores)
    is_ko = labels == 1
    ok_scores, ko_scores = scores[~is_ko], scores[is_ko]
    both = ok_scores.size > 0 and ko_scores.size > 0
    predicted = (scores >= threshold).astype(np.int64)
    return {
        "image_auroc": float(roc_auc_score(labels, scores)) if both else None,
        "image_aupr": float(average_precision_score(labels, scores)) if both else None,
        "f1": float(f1_score(labels, predicted, zero_division=0.0)) if ko_scores.size else None,
        "threshold": float(threshold),
        "false_reject_rate": _fraction_at_or_above(ok_scores, threshold),
        "recall": _fraction_at_or_above(ko_scores, threshold),
        "false_reject_at_full_recall": (
            _fraction_at_or_above(ok_scores, float(ko_scores.min())) if both else None
        ),
        "n_test_ok": int(ok_scores.size),
        "n_test_ko": int(ko_scores.size),
    }


def recall_at_false_reject(ok_scores: np.ndarray, ko_scores: np.ndarray, rate: float) -> float:
    """The best recall any threshold reaches while rejecting at most `rate` of the OK scores.

    At most floor(rate * n_ok) OK may lie at or above the threshold, so the lowest admissible
    threshold sits just above the next highest OK score.
    """
    ok = np.sort(np.asarray(ok_scores, np.float64))[::-1]
    ko = np.asarray(ko_scores, np.float64)
    if not ok.size or not ko.size:
        raise ValueError("need OK and KO scores for a recall at a false-reject rate")
    allowed = int(np.floor(rate * ok.size + 1e-9))
    if allowed >= ok.size:
        return 1.0
    return float(np.mean(ko > ok[allowed]))


def pixel_metrics(maps: Sequence[np.ndarray], gt_masks: Sequence[np.ndarray | None]) -> dict:
    """Pixel AUROC and PRO (FPR <= 0.3); a None mask is left out, an all-zero mask is all-normal."""
    if len(maps) != len(gt_masks):
        raise ValueError(f"{len(maps)} maps but {len(gt_masks)} masks")
    values, truths, regions = [], [], []
    n_regions = 0
    for index, (amap, mask) in enumerate(zip(maps, gt_masks, strict=True)):
        if mask is None:
            continue
        truth = _binary_mask(mask, index)
        values.append(_resize_map(amap, truth.shape, index).ravel())
        truths.append(truth.ravel())
        count, components = cv2.connectedComponents(truth.astype(np.uint8), connectivity=8)
        regions.append(np.where(components > 0, components - 1 + n_regions, -1).ravel())
        n_regions += count - 1
    result: dict = {"pixel_auroc": None, "pro": None}
    if not values or n_regions == 0:
        return result
    value, truth, region = np.concatenate(values), np.concatenate(truths), np.concatenate(regions)
    if truth.all():
        return result
    result["pixel_auroc"] = float(roc_auc_score(truth, value))
    result["pro"] = _pro(value, truth, region, n_regions)
    return result


def _check_image_inputs(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.size != scores.size:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    if labels.size == 0:
        raise ValueError("no samples to evaluate")
    unknown = np.setdiff1d(np.unique(labels), [0, 1])
    if unknown.size:
        raise ValueError(f"labels must be 0 (OK) or 1 (KO), got {unknown.tolist()}")
    if not np.isfinite(scores).all():
        raise ValueError(f"{int((~np.isfinite(scores)).sum())} scores are NaN or infinite")
    return labels.astype(np.int64), scores


def _fraction_at_or_above(values: np.ndarray, threshold: float) -> float | None:
    return float(np.mean(values >= threshold)) if values.size else None


def _binary_mask(mask: np.ndarray, index: int) -> np.ndarray:
    mask = np.asarray(mask)
    if mask.ndim == 3:
        mask = mask.max(axis=2)
    if mask.ndim != 2:
        raise ValueError(f"mask {index} has shape {mask.shape}; expected (height, width)")
    return mask > 0


def _resize_map(amap: np.ndarray, shape: tuple[int, int], index: int) -> np.ndarray:
    amap = np.asarray(amap, dtype=np.float32)
    if amap.ndim != 2:
        raise ValueError(f"map {index} has shape {amap.shape}; expected (height, width)")
    if not np.isfinite(amap).all():
        raise ValueError(f"map {index} holds NaN or infinite values")
    if amap.shape != shape:
        amap = cv2.resize(amap, (shape[1], shape[0]), interpolation=cv2.INTER_LINEAR)
    return amap


def _pro(value: np.ndarray, truth: np.ndarray, region: np.ndarray, n_regions: int) -> float:
    """Area under the per-region-overlap vs normal-pixel FPR curve up to PRO_MAX_FPR, over it."""
    normal = value[~truth]
    thresholds = np.unique(
        np.concatenate(
            [
                np.linspace(value.min(), value.max(), PRO_THRESHOLDS),
                np.quantile(normal, 1.0 - np.linspace(0.0, PRO_MAX_FPR, PRO_THRESHOLDS)),
            ]
        )
    )
    fpr = _fraction_at_or_above_each(normal, thresholds)
    in_region = region >= 0
    bins = np.searchsorted(thresholds, value[in_region], side="right")
    counts = np.bincount(
        region[in_region] * (thresholds.size + 1) + bins,
        minlength=n_regions * (thresholds.size + 1),
    ).reshape(n_regions, thresholds.size + 1)
    at_or_above = np.cumsum(counts[:, ::-1], axis=1)[:, ::-1][:, 1:]
    overlap = (at_or_above / counts.sum(axis=1, keepdims=True)).mean(axis=0)
    fpr = np.concatenate([[0.0], fpr[::-1]])
    overlap = np.concatenate([[0.0], overlap[::-1]])
    cut = int(np.searchsorted(fpr, PRO_MAX_FPR, side="right"))
    x, y = fpr[:cut], overlap[:cut]
    if cut < fpr.size:
        step = (PRO_MAX_FPR - fpr[cut - 1]) / (fpr[cut] - fpr[cut - 1])
        x = np.append(x, PRO_MAX_FPR)
        y = np.append(y, overlap[cut - 1] + step * (overlap[cut] - overlap[cut - 1]))
    return float(np.trapezoid(y, x) / PRO_MAX_FPR)


def _fraction_at_or_above_each(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    ordered = np.sort(values)
    return 1.0 - np.searchsorted(ordered, thresholds, side="left") / ordered.size
