"""What a photo looks like as a whole: light, contrast, focus and pose, read off its registration.

Cheap by design: the pose comes from the registration itself; brightness and contrast are the
gray level the registration took of its working image while that was in the CPU's cache
(`registration.gray_level`); the focus is read on one small full-resolution patch at the
reference's centre. Light and focus are read on a share of the photos (`reads`): the focus on
every `drift.focus_every_boards`th photo, the light on every `drift.light_every_boards`th,
halfway between. Each OpenCV call costs ten times more on the line, between two inferences,
than with warm caches (docs/BENCHMARKS.md), and light and lens drift over many boards, not one.
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


def reads(photo: int, focus_every: int, light_every: int) -> tuple[bool, bool]:
    """(focus, light): whether the `photo`th decoded photo (from 0) reads the focus, the light.
    The focus on photos 0, `focus_every`, ...; the light on `light_every // 2`, then every
    `light_every`th: with equal settings the two never fall on one photo (unless 1)."""
    return photo % focus_every == 0, photo % light_every == light_every // 2


def sharpness(gray_full: np.ndarray, centre: tuple[float, float]) -> float:
    """The Laplacian's variance over the patch's own variance at `centre` (full-size pixels),
    so that a gain change leaves it be."""
    height, width = gray_full.shape
    half = min(FOCUS_PATCH, height, width) // 2
    x = min(max(round(centre[0]), half), width - half)
    y = min(max(round(centre[1]), half), height - half)
    patch = gray_full[y - half : y + half, x - half : x + half]
    _, patch_sd = cv2.meanStdDev(patch)
    _, laplacian_sd = cv2.meanStdDev(cv2.Laplacian(patch, cv2.CV_16S))  # 8-bit: within +-1020
    spread = float(patch_sd[0, 0]) ** 2
    return float(laplacian_sd[0, 0]) ** 2 / spread if spread > 0 else 0.0


def photometric(
    level: tuple[float, float], gray_full: np.ndarray, centre: tuple[float, float]
) -> dict:
    """Brightness and contrast (the gray level's mean and sd) and the sharpness at `centre`."""
    return {"brightness": level[0], "contrast": level[1], "sharpness": sharpness(gray_full, centre)}


def capture_measures(
    registration: Registration, reference_size: tuple[int, int], focus: bool = True
) -> dict:
    """The measures of `MEASURES` read on one registered photo (no second registration): the
    pose always, brightness and contrast where the registration took its gray level, the
    sharpness (the one measure read off pixels of its own) with `focus`."""
    if registration.gray_full is None:
        raise ValueError("the registration kept no gray image to measure")
    middle_x, middle_y = (reference_size[0] - 1) / 2, (reference_size[1] - 1) / 2
    (a, b, shift_x), (c, d, shift_y) = registration.matrix.tolist()
    x = a * middle_x + b * middle_y + shift_x
    y = c * middle_x + d * middle_y + shift_y
    measures = {
        "inliers": registration.inlier_share,
        "residual": registration.residual_px,
        "offset": registration.shift_px,
        "offset_x": x - middle_x,
        "offset_y": y - middle_y,
        "rotation": registration.rotation_deg,
        "scale": registration.scale,
    }
    if registration.gray_level is not None:
        measures["brightness"], measures["contrast"] = registration.gray_level
    if focus:
        measures["sharpness"] = sharpness(registration.gray_full, (x, y))
    return measures


def reference_measures(reference_bgr: np.ndarray, working_width: int) -> dict:
    """The photometric measures of the reference image itself (what "x reference" compares to)."""
    gray_full = cv2.cvtColor(reference_bgr, cv2.COLOR_BGR2GRAY)
    height, width = gray_full.shape
    gray = gray_full
    if width > working_width:
        size = (working_width, max(1, round(height * working_width / width)))
        gray = cv2.resize(gray_full, size, interpolation=cv2.INTER_AREA)
    return photometric(gray_level(gray), gray_full, ((width - 1) / 2, (height - 1) / 2))
