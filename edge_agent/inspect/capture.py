"""What a photo looks like as a whole: light, contrast, focus and pose, read off its registration.

Cheap by design on the inspection path (`tests/drift_cost.py`): brightness and contrast are the
gray level the registration took of its working image while that was in the CPU's cache
(`registration.gray_level`); the focus is read on one small full-resolution patch at the
reference's centre, which the inspection only copies (`CaptureSample`): its Laplacian is taken
on the drift monitor's thread, in batches, where a few calls cost a quarter of what they cost
between registration and scoring.
"""

from __future__ import annotations

from dataclasses import dataclass

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


@dataclass(frozen=True)
class CaptureSample:
    """One photo's capture measures as the inspection took them: every measure but the
    sharpness, and a copy of the patch the sharpness is read from (the photo is not kept)."""

    measures: dict[str, float]
    focus_patch: np.ndarray

    def complete(self) -> dict[str, float]:
        """Every measure of `MEASURES`."""
        return {**self.measures, "sharpness": sharpness(self.focus_patch)}


def focus_patch(gray_full: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """The `FOCUS_PATCH` square of `gray_full` at `centre` (full-size pixels), inside the
    image, as a copy."""
    height, width = gray_full.shape
    half = min(FOCUS_PATCH, height, width) // 2
    x = min(max(round(centre[0]), half), width - half)
    y = min(max(round(centre[1]), half), height - half)
    return gray_full[y - half : y + half, x - half : x + half].copy()


def sharpness(patch: np.ndarray) -> float:
    """The Laplacian's variance over the patch's own variance, so a gain change leaves it be."""
    _, patch_sd = cv2.meanStdDev(patch)
    _, laplacian_sd = cv2.meanStdDev(cv2.Laplacian(patch, cv2.CV_16S))  # 8-bit: within +-1020
    spread = float(patch_sd[0, 0]) ** 2
    return float(laplacian_sd[0, 0]) ** 2 / spread if spread > 0 else 0.0


def photometric(
    level: tuple[float, float], gray_full: np.ndarray, centre: tuple[float, float]
) -> dict:
    """Brightness and contrast (the gray level's mean and sd), and the sharpness at `centre`."""
    return {
        "brightness": level[0],
        "contrast": level[1],
        "sharpness": sharpness(focus_patch(gray_full, centre)),
    }


def capture_sample(registration: Registration, reference_size: tuple[int, int]) -> CaptureSample:
    """`MEASURES` of one registered photo (no second registration), the sharpness still to take."""
    if registration.gray_level is None or registration.gray_full is None:
        raise ValueError("the registration kept no gray image to measure")
    middle = ((reference_size[0] - 1) / 2, (reference_size[1] - 1) / 2)
    (a, b, shift_x), (c, d, shift_y) = registration.matrix.tolist()
    centre = (a * middle[0] + b * middle[1] + shift_x, c * middle[0] + d * middle[1] + shift_y)
    measures = {
        "brightness": registration.gray_level[0],
        "contrast": registration.gray_level[1],
        "inliers": registration.inlier_share,
        "residual": registration.residual_px,
        "offset": registration.shift_px,
        "offset_x": float(centre[0] - middle[0]),
        "offset_y": float(centre[1] - middle[1]),
        "rotation": registration.rotation_deg,
        "scale": registration.scale,
    }
    return CaptureSample(measures, focus_patch(registration.gray_full, centre))


def reference_measures(reference_bgr: np.ndarray, working_width: int) -> dict:
    """The photometric measures of the reference image itself (what "x reference" compares to)."""
    gray_full = cv2.cvtColor(reference_bgr, cv2.COLOR_BGR2GRAY)
    height, width = gray_full.shape
    gray = gray_full
    if width > working_width:
        size = (working_width, max(1, round(height * working_width / width)))
        gray = cv2.resize(gray_full, size, interpolation=cv2.INTER_AREA)
    return photometric(gray_level(gray), gray_full, ((width - 1) / 2, (height - 1) / 2))
