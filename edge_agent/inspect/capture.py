"""What a photo looks like as a whole: light, contrast, focus and pose, read off its registration.

Cheap by design (about 0.05 ms of CPU for a 5 MP photo with warm caches, `tests/drift_cost.py`;
three times that in the agent, docs/BENCHMARKS.md): brightness and contrast are the gray level
the registration took of its working image while that was in the CPU's cache
(`registration.gray_level`), and the focus is read on one small full-resolution patch at the
reference's centre, on every `drift.focus_every_boards`th photo only: it is the one measure that
costs pixels of its own, and a lens drifts out of focus over many boards, not one.
"""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.inspect.registration import Registration, gray_level

FOCUS_PATCH = 128  # side of the full-resolution patch the sharpness is measured on, pixels
MEASURES = (
    "brightness",
    "contrast",
    "sharpness",
    "inliers",
    "residual",
    "offset",
    "offset_x",
    "offset_y",
    "rotation",
    "scale",
)


def photometric(
    level: tuple[float, float],
    gray_full: np.ndarray,
    centre: tuple[float, float],
    focus: bool = True,
) -> dict:
    """Brightness and contrast (the gray level's mean and sd), and with `focus` the sharpness:
    the Laplacian's variance over the patch's own variance at `centre` (full-size pixels), so a
    gain change leaves it be."""
    light = {"brightness": level[0], "contrast": level[1]}
    if not focus:
        return light
    height, width = gray_full.shape
    half = min(FOCUS_PATCH, height, width) // 2
    x = min(max(round(centre[0]), half), width - half)
    y = min(max(round(centre[1]), half), height - half)
    patch = gray_full[y - half : y + half, x - half : x + half]
    _, patch_sd = cv2.meanStdDev(patch)
    _, laplacian_sd = cv2.meanStdDev(cv2.Laplacian(patch, cv2.CV_16S))  # 8-bit: within +-1020
    spread = float(patch_sd[0, 0]) ** 2
    return light | {"sharpness": float(laplacian_sd[0, 0]) ** 2 / spread if spread > 0 else 0.0}


def capture_measures(
    registration: Registration, reference_size: tuple[int, int], focus: bool = True
) -> dict:
    """Every measure of `MEASURES` for one registered photo (no second registration); without
    `focus`, all but the sharpness (the one measure read off pixels of its own)."""
    if registration.gray_level is None or registration.gray_full is None:
        raise ValueError("the registration kept no gray image to measure")
    middle = ((reference_size[0] - 1) / 2, (reference_size[1] - 1) / 2)
    (a, b, shift_x), (c, d, shift_y) = registration.matrix.tolist()
    centre = (a * middle[0] + b * middle[1] + shift_x, c * middle[0] + d * middle[1] + shift_y)
    return {
        **photometric(registration.gray_level, registration.gray_full, centre, focus),
        "inliers": registration.inlier_share,
        "residual": registration.residual_px,
        "offset": registration.shift_px,
        "offset_x": float(centre[0] - middle[0]),
        "offset_y": float(centre[1] - middle[1]),
        "rotation": registration.rotation_deg,
        "scale": registration.scale,
    }


def reference_measures(reference_bgr: np.ndarray, working_width: int) -> dict:
    """The photometric measures of the reference image itself (what "x reference" compares to)."""
    gray_full = cv2.cvtColor(reference_bgr, cv2.COLOR_BGR2GRAY)
    height, width = gray_full.shape
    gray = gray_full
    if width > working_width:
        size = (working_width, max(1, round(height * working_width / width)))
        gray = cv2.resize(gray_full, size, interpolation=cv2.INTER_AREA)
    return photometric(gray_level(gray), gray_full, ((width - 1) / 2, (height - 1) / 2))
