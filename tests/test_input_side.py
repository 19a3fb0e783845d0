"""The per-connector model input side: the crop's own pixels, between the two settings."""

from __future__ import annotations

import pytest

from trainer.input_side import choose_input_side, scale_roi, scaled_bank


@pytest.mark.parametrize(
    ("crop", "side", "says"),
    [
        ((61, 203), 128, "no more detail"),  # a small connector keeps the base input
        ((164, 200), 128, "no more detail"),  # 181 px: less than half again the base
        ((200, 200), 192, "rounded down"),
        ((300, 300), 224, "capped"),  # a solar cell: more than the cap
        ((128, 128), 128, "no more detail"),
    ],
)
def test_the_side_follows_the_crop_between_base_and_cap(
    crop: tuple[int, int], side: int, says: str
) -> None:
    chosen = choose_input_side(crop, 128, 224)
    assert chosen.side == side
    assert says in chosen.reason
    assert f"crop {crop[1]}x{crop[0]} px" in chosen.reason


def test_a_cap_at_the_base_means_one_size_for_all() -> None:
    assert choose_input_side((300, 300), 128, 128).side == 128
    assert choose_input_side((300, 300), 128, 64).side == 128  # never below the base


def test_a_roi_is_scaled_outwards_and_kept_when_the_frame_is_the_side() -> None:
    assert scale_roi((8, 24, 4, 28), 32, 96) == (24, 72, 12, 84)
    assert scale_roi((1, 3, 1, 3), 2, 3) == (1, 5, 1, 5)
    assert scale_roi((8, 24, 4, 28), 32, 32) == (8, 24, 4, 28)
    assert scale_roi(None, 32, 96) is None


def test_the_bank_cap_grows_with_the_input_area() -> None:
    assert scaled_bank(1600, 128, 128) == 1600
    assert scaled_bank(1600, 128, 256) == 6400
    assert scaled_bank(1600, 128, 224) == 4900
