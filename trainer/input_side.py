"""How many pixels a connector's model looks at: chosen per connector from its crop's size.

A crop with more pixels than `training.input_size` per side gets a larger model input, up to
`training.input_size_max`: the crop's geometric-mean side rounded down to a multiple of 64 (so
a side grows only once the crop has half again as many pixels as the base 128 px input, the
cost per crop growing with the square of the side). The connectors of a board (the default
station's are 76-204 px) keep the small and fast input; a large crop (a 300 px solar cell, a
textured surface) keeps the fine detail a 128 px resize would average away. PatchCore's memory bank
grows with it (`coreset_max` is stated for the base side and scaled by the area), so the bank
keeps as many patches per part of the crop as at the base. ROI coordinates stay in the
`training.input_size` frame the set-up page draws them in, and are scaled to the chosen side.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

STEP = 64  # sides grow in steps of two of the backbone's coarsest feature stride (32)


@dataclass(frozen=True)
class InputSide:
    side: int
    reason: str


def choose_input_side(crop_size: tuple[int, int], base: int, largest: int) -> InputSide:
    """The model input side for crops of `crop_size` (height, width) and why."""
    height, width = crop_size
    native = math.sqrt(height * width)
    fitting = STEP * math.floor(native / STEP)
    side = max(base, min(largest, fitting))
    where = f"crop {width}x{height} px (geometric-mean side {native:.0f})"
    if side == base:
        reason = f"{where}: no more detail than the {base} px input holds"
    elif side == largest:
        reason = f"{where}: capped at input_size_max {largest}"
    else:
        reason = f"{where}: its own pixels, rounded down to a multiple of {STEP}"
    return InputSide(side, reason)


def scaled_bank(coreset_max: int, base: int, side: int) -> int:
    """The memory bank's cap at `side`: `coreset_max` (stated for `base`) times the area ratio."""
    return max(coreset_max, round(coreset_max * (side / base) ** 2))


def scale_roi(
    roi: tuple[int, int, int, int] | None, frame: int, side: int
) -> tuple[int, int, int, int] | None:
    """A ROI [y1, y2, x1, x2] given in a `frame` px square, in a `side` px square."""
    if roi is None or frame == side:
        return roi
    y1, y2, x1, x2 = roi
    return (
        math.floor(y1 * side / frame),
        math.ceil(y2 * side / frame),
        math.floor(x1 * side / frame),
        math.ceil(x2 * side / frame),
    )
