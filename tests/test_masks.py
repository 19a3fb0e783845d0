"""Weight masks: a manual ROI wins where given; else steady pixels weigh more than varying ones."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from trainer.masks import RoiError, load_roi_file, mask_id, roi_mask, variance_mask

LOW, HIGH = 0.1, 2.0
SIZE = 32


def test_roi_weighs_inside_high_and_outside_low() -> None:
    mask = roi_mask((4, 12, 8, 20), SIZE, LOW, HIGH, "J1")

    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.float32
    assert (mask[4:12, 8:20] == HIGH).all()
    assert (mask == HIGH).sum() == 8 * 12
    assert (mask[mask != HIGH] == np.float32(LOW)).all()


def test_roi_partly_outside_the_input_is_clamped() -> None:
    mask = roi_mask((-5, 10, 20, 200), SIZE, LOW, HIGH, "J1")

    assert (mask[0:10, 20:SIZE] == HIGH).all()
    assert (mask == HIGH).sum() == 10 * (SIZE - 20)


@pytest.mark.parametrize(
    "roi",
    [(40, 60, 0, 10), (0, 10, -20, -1), (20, 10, 0, 10), (0, 10, 15, 15)],
    ids=["below", "left", "inverted", "empty"],
)
def test_roi_without_pixels_in_the_input_names_the_connector(roi: tuple) -> None:
    with pytest.raises(RoiError, match="'USB_3'") as error:
        roi_mask(roi, SIZE, LOW, HIGH, "USB_3")

    assert str(list(roi)) in str(error.value)


def test_roi_file_in_the_users_format_loads(tmp_path: Path) -> None:
    path = tmp_path / "rois.json"
    path.write_text('{"J1": [4, 12, 8, 20], "J2": [0, 32, 0, 16]}')

    assert load_roi_file(path) == {"J1": (4, 12, 8, 20), "J2": (0, 32, 0, 16)}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("J1: [1, 2, 3, 4]", "not valid JSON"),
        ("[[1, 2, 3, 4]]", "expected an object"),
        ('{"J1": [1, 2, 3]}', "'J1' must be four integers"),
        ('{"J1": {"y1": 1, "y2": 2, "x1": 3, "x2": 4}}', "'J1' must be four integers"),
        ('{"J1": [1.5, 2, 3, 4]}', "'J1' must be four integers"),
        ('{"J1": ["1", 2, 3, 4]}', "'J1' must be four integers"),
        ('{"J1": [true, 20, 3, 4]}', "'J1' must be four integers"),
    ],
    ids=["not-json", "list", "three-values", "dict", "float", "string", "bool"],
)
def test_bad_roi_file_is_named(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "rois.json"
    path.write_text(text)

    with pytest.raises(RoiError, match=reason) as error:
        load_roi_file(path)

    assert str(error.value).startswith(f"{path}: ")


def test_missing_roi_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "rois.json"

    with pytest.raises(RoiError, match="not found") as error:
        load_roi_file(path)

    assert str(path) in str(error.value)


@pytest.fixture
def ok_images() -> np.ndarray:
    """20 OK images: a fixed pattern everywhere, plus a patch that differs from board to board."""
    rng = np.random.default_rng(4)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    pattern = 100 + 40 * np.sin(xx / 3.0) * np.cos(yy / 4.0)
    images = np.repeat(pattern[None], 20, axis=0) + rng.normal(0, 1.0, (20, SIZE, SIZE))
    images[:, 20:28, 4:12] += rng.normal(0, 30, (20, 8, 8))
    return images.clip(20, 235).astype(np.uint8)  # room to relight without clipping


def test_variance_mask_weighs_varying_pixels_less(ok_images: np.ndarray) -> None:
    mask = variance_mask(ok_images, LOW, HIGH)

    assert mask.shape == (SIZE, SIZE) and mask.dtype == np.float32
    assert mask.min() >= LOW - 1e-6 and mask.max() <= HIGH + 1e-6
    varying, steady = mask[22:26, 6:10], mask[2:10, 20:30]
    assert varying.max() < LOW + 0.2 * (HIGH - LOW)
    assert steady.min() > LOW + 0.7 * (HIGH - LOW)


def test_variance_mask_ignores_brightness_of_individual_images(ok_images: np.ndarray) -> None:
    gains = np.linspace(0.8, 1.25, len(ok_images))[:, None, None]
    offsets = np.linspace(-30, 30, len(ok_images))[:, None, None]
    relit = ok_images.astype(np.float32) * gains + offsets

    reference = variance_mask(ok_images, LOW, HIGH)
    np.testing.assert_allclose(variance_mask(relit, LOW, HIGH), reference, atol=1e-3)
    darker = ok_images - np.arange(20, dtype=np.uint8)[:, None, None]
    np.testing.assert_allclose(variance_mask(darker, LOW, HIGH), reference, atol=1e-3)


def test_mask_id_is_a_content_id() -> None:
    first = roi_mask((4, 12, 8, 20), SIZE, LOW, HIGH)

    assert mask_id(first) == mask_id(first.copy())
    assert mask_id(first) != mask_id(roi_mask((4, 12, 8, 21), SIZE, LOW, HIGH))
