"""Image and pixel metrics on the calibrated scale, checked against sklearn and a plain PRO."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from sklearn.metrics import average_precision_score, f1_score, roc_auc_score

from trainer.evaluation.metrics import image_metrics, pixel_metrics, recall_at_false_reject


def _square_mask(size: int = 64, top: int = 20, left: int = 20, side: int = 16) -> np.ndarray:
    mask = np.zeros((size, size), dtype=np.uint8)
    mask[top : top + side, left : left + side] = 255
    return mask


def _reference_pro(maps: list[np.ndarray], masks: list[np.ndarray], max_fpr: float = 0.3):
    """PRO the slow, obvious way: every distinct score a threshold, one region at a time."""
    values = np.concatenate([m.ravel() for m in maps])
    normal = np.concatenate([m[k == 0] for m, k in zip(maps, masks, strict=True)])
    regions = []
    for amap, mask in zip(maps, masks, strict=True):
        labelled, count = ndimage.label(mask > 0, structure=np.ones((3, 3)))
        regions += [amap[labelled == i] for i in range(1, count + 1)]
    points = [(0.0, 0.0)]
    for threshold in np.unique(values)[::-1]:
        fpr = float(np.mean(normal >= threshold))
        pro = float(np.mean([np.mean(region >= threshold) for region in regions]))
        points.append((fpr, pro))
    fpr, pro = np.array(points).T
    grid = np.linspace(0.0, max_fpr, 2001)
    return float(np.trapezoid(np.interp(grid, fpr, pro), grid) / max_fpr)


def test_perfect_separation_gives_auroc_one_and_full_recall() -> None:
    labels = np.array([0, 0, 0, 1, 1])
    scores = np.array([0.1, 0.4, 0.9, 1.2, 3.0])
    metrics = image_metrics(labels, scores)
    assert metrics["image_auroc"] == 1.0
    assert metrics["image_aupr"] == 1.0
    assert metrics["recall"] == 1.0
    assert metrics["f1"] == 1.0
    assert metrics["false_reject_rate"] == 0.0
    assert metrics["false_reject_at_full_recall"] == 0.0
    assert (metrics["n_test_ok"], metrics["n_test_ko"]) == (3, 2)


def test_image_metrics_agree_with_sklearn_on_random_data() -> None:
    rng = np.random.default_rng(7)
    labels = (rng.random(300) < 0.2).astype(int)
    scores = rng.normal(0.7, 0.3, 300) + 0.5 * labels
    metrics = image_metrics(labels, scores, threshold=1.0)
    assert metrics["image_auroc"] == pytest.approx(roc_auc_score(labels, scores))
    assert metrics["image_aupr"] == pytest.approx(average_precision_score(labels, scores))
    assert metrics["f1"] == pytest.approx(f1_score(labels, scores >= 1.0))
    assert metrics["false_reject_rate"] == pytest.approx(np.mean(scores[labels == 0] >= 1.0))
    assert metrics["recall"] == pytest.approx(np.mean(scores[labels == 1] >= 1.0))
    hardest_ko = scores[labels == 1].min()
    expected = np.mean(scores[labels == 0] >= hardest_ko)
    assert metrics["false_reject_at_full_recall"] == pytest.approx(expected)


def test_threshold_counts_a_score_equal_to_it_as_ko() -> None:
    metrics = image_metrics(np.array([0, 0, 1]), np.array([1.0, 0.5, 1.0]))
    assert metrics["false_reject_rate"] == 0.5
    assert metrics["recall"] == 1.0


def test_no_ko_leaves_ko_metrics_undefined_but_measures_false_rejects() -> None:
    metrics = image_metrics(np.zeros(4, dtype=int), np.array([0.2, 0.5, 1.1, 0.3]))
    for key in ("image_auroc", "image_aupr", "f1", "recall", "false_reject_at_full_recall"):
        assert metrics[key] is None, key
    assert metrics["false_reject_rate"] == 0.25
    assert (metrics["n_test_ok"], metrics["n_test_ko"]) == (4, 0)


def test_no_ok_leaves_false_reject_metrics_undefined() -> None:
    metrics = image_metrics(np.ones(2, dtype=int), np.array([1.5, 0.5]))
    assert metrics["false_reject_rate"] is None
    assert metrics["image_auroc"] is None
    assert metrics["recall"] == 0.5


def test_image_metrics_reject_nan_scores_and_unknown_labels() -> None:
    with pytest.raises(ValueError, match="NaN"):
        image_metrics(np.array([0, 1]), np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="labels must be"):
        image_metrics(np.array([0, 2]), np.array([0.1, 0.2]))


def test_pro_is_one_for_a_map_equal_to_the_mask() -> None:
    mask = _square_mask()
    ok_mask = np.zeros_like(mask)
    metrics = pixel_metrics([mask / 255.0, np.zeros(mask.shape)], [mask, ok_mask])
    assert metrics["pro"] == pytest.approx(1.0)
    assert metrics["pixel_auroc"] == pytest.approx(1.0)


def test_pro_drops_for_a_shifted_blob() -> None:
    mask = _square_mask()
    shifted = np.roll(mask, 8, axis=1) / 255.0
    metrics = pixel_metrics([shifted.astype(np.float32)], [mask])
    assert metrics["pro"] < 0.9
    assert metrics["pixel_auroc"] < 1.0


def test_pro_matches_a_plain_per_threshold_computation() -> None:
    rng = np.random.default_rng(3)
    masks = [_square_mask(32, 4, 4, 6), _square_mask(32, 20, 10, 8), np.zeros((32, 32), np.uint8)]
    masks[0][25:29, 25:30] = 1
    maps = [rng.random((32, 32)).astype(np.float32) + 0.8 * (m > 0) for m in masks]
    metrics = pixel_metrics(maps, masks)
    assert metrics["pro"] == pytest.approx(_reference_pro(maps, masks), abs=0.01)
    truth = np.concatenate([m.ravel() > 0 for m in masks])
    expected_auroc = roc_auc_score(truth, np.concatenate([m.ravel() for m in maps]))
    assert metrics["pixel_auroc"] == pytest.approx(expected_auroc)


def test_maps_are_resized_to_the_mask() -> None:
    mask = np.zeros((96, 64), dtype=np.uint8)
    mask[24:72, 16:48] = 1
    amap = np.zeros((32, 32), dtype=np.float32)
    amap[8:24, 8:24] = 2.0
    metrics = pixel_metrics([amap], [mask])
    assert metrics["pixel_auroc"] > 0.95
    assert metrics["pro"] > 0.9


def test_pixel_metrics_are_none_without_any_ko_mask() -> None:
    maps = [np.random.default_rng(0).random((16, 16)) for _ in range(2)]
    assert pixel_metrics(maps, [None, None]) == {"pixel_auroc": None, "pro": None}
    all_normal = [np.zeros((16, 16), np.uint8)] * 2
    assert pixel_metrics(maps, all_normal) == {"pixel_auroc": None, "pro": None}


def test_unannotated_samples_are_left_out() -> None:
    mask = _square_mask()
    exact = (mask / 255.0).astype(np.float32)
    noisy = np.random.default_rng(1).random(mask.shape).astype(np.float32) * 5
    assert pixel_metrics([exact, noisy], [mask, None])["pro"] == pytest.approx(1.0)


def test_recall_at_false_reject_matches_a_search_over_every_threshold() -> None:
    rng = np.random.default_rng(4)
    ok, ko = rng.normal(0, 1, 388), rng.normal(2, 1, 313)
    best = 0.0
    for threshold in np.concatenate([ok, ko, [np.inf]]):
        if np.mean(ok >= threshold) <= 0.005:
            best = max(best, float(np.mean(ko >= threshold)))

    assert recall_at_false_reject(ok, ko, 0.005) == pytest.approx(best)


def test_recall_at_false_reject_allows_no_ok_when_the_rate_is_below_one_sample() -> None:
    ok, ko = np.array([0.1, 0.2, 0.9]), np.array([0.5, 0.95, 1.5])

    assert recall_at_false_reject(ok, ko, 0.01) == pytest.approx(2 / 3)
    assert recall_at_false_reject(ok, ko, 0.34) == pytest.approx(1.0)
