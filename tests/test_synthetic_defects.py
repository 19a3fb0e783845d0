"""Synthetic defects: each kind changes the crop where the weight mask looks, the same way for a
seed, and an unknown kind is refused."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.evaluation.synthetic_defects import KINDS, paste


def textured_crop(h: int = 60, w: int = 120) -> np.ndarray:
    """A mid-gray board with fine grain and a brighter part in the middle."""
    rng = np.random.default_rng(3)
    crop = np.full((h, w, 3), 110, np.float32) + rng.normal(0, 4, (h, w, 1))
    crop[h // 4 : 3 * h // 4, w // 4 : 3 * w // 4] += 60
    return np.clip(crop, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_changes_the_crop_and_keeps_its_shape(kind: str) -> None:
    crop = textured_crop()

    defective = paste(crop, kind, np.random.default_rng(0), np.ones((8, 8), np.float32))

    assert defective.shape == crop.shape and defective.dtype == np.uint8
    changed = np.abs(defective.astype(int) - crop.astype(int)).max(2) > 10
    assert changed.sum() >= 20
    assert np.array_equal(paste(crop, kind, np.random.default_rng(0), np.ones((8, 8))), defective)


@pytest.mark.parametrize("kind", ["missing", "shifted", "crack"])
def test_defects_centre_on_where_the_weight_mask_looks(kind: str) -> None:
    crop = textured_crop()
    weights = np.zeros((6, 12), np.float32)
    weights[1:3, 8:11] = 1.0  # the upper right of the crop only
    rng = np.random.default_rng(1)

    for _ in range(10):
        changed = np.abs(paste(crop, kind, rng, weights).astype(int) - crop.astype(int)).max(2) > 10
        ys, xs = np.nonzero(changed)
        assert xs.mean() > crop.shape[1] / 2 and ys.mean() < crop.shape[0] / 2


def test_missing_fills_with_the_board_around_the_part() -> None:
    crop = textured_crop()
    weights = np.zeros((60, 120), np.float32)
    weights[28:32, 58:62] = 1.0  # the middle of the bright part

    defective = paste(crop, "missing", np.random.default_rng(2), weights)

    assert abs(float(np.median(defective[27:33, 57:63])) - 110) < 10


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown synthetic defect 'scratch'"):
        paste(textured_crop(), "scratch", np.random.default_rng(0), np.ones((2, 2)))
