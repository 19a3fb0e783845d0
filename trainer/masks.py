"""Spatial weight masks: where on a connector's crop the anomaly map counts, and how much.

By default from the OK images' variance (steady pixels weigh more than ones that vary between
good boards); a manual ROI, in the user's JSON format {"conn1": [y1, y2, x1, x2]} in model-input
pixels, overrides it: `max_weight` inside, `min_weight` outside.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import structlog

log = structlog.get_logger()


class RoiError(ValueError):
    """A ROI file or entry that cannot be used; the message names the file and connector."""


def load_roi_file(path: Path) -> dict[str, tuple[int, int, int, int]]:
    """Read {"connector": [y1, y2, x1, x2], ...}; anything else is an error naming the file."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise RoiError(f"{path}: ROI file not found") from None
    except json.JSONDecodeError as exc:
        raise RoiError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise RoiError(f"{path}: expected an object {{connector: [y1, y2, x1, x2]}}")
    rois = {}
    for name, value in data.items():
        if (
            not isinstance(value, list)
            or len(value) != 4
            or not all(type(v) is int for v in value)  # JSON true/false are ints to Python
        ):
            raise RoiError(f"{path}: ROI of {name!r} must be four integers [y1, y2, x1, x2]")
        rois[name] = tuple(value)
    return rois


def clamped_roi(roi: tuple[int, int, int, int], size: int, name: str = "") -> tuple:
    """The ROI [y1, y2, x1, x2] clamped to a `size` px square; an empty one is an error."""
    clamped = tuple(min(max(v, 0), size) for v in roi)
    cy1, cy2, cx1, cx2 = clamped
    if cy2 <= cy1 or cx2 <= cx1:
        raise RoiError(
            f"ROI of {name!r} {list(roi)} is empty or lies outside the {size}x{size} model input"
        )
    if clamped != tuple(roi):
        log.warning("roi clamped", connector=name, roi=list(roi), clamped=list(clamped))
    return clamped


def roi_mask(
    roi: tuple[int, int, int, int], size: int, min_weight: float, max_weight: float, name: str = ""
) -> np.ndarray:
    """`max_weight` inside the ROI (clamped to the image), `min_weight` outside."""
    cy1, cy2, cx1, cx2 = clamped_roi(roi, size, name)
    mask = np.full((size, size), min_weight, np.float32)
    mask[cy1:cy2, cx1:cx2] = max_weight
    return mask


def variance_mask(gray: np.ndarray, min_weight: float, max_weight: float) -> np.ndarray:
    """Weights from (N, S, S) OK images: low where good boards vary, high where they agree."""
    images = gray.astype(np.float32)
    mean = images.mean(axis=(1, 2), keepdims=True)
    spread = images.std(axis=(1, 2), keepdims=True) + 1e-6
    standardised = (images - mean) / spread  # global lighting changes are not variation
    variation = cv2.GaussianBlur(standardised.std(axis=0), (0, 0), sigmaX=2.0)
    scaled = np.clip(variation / (np.percentile(variation, 99) + 1e-6), 0.0, 1.0)
    return (max_weight - (max_weight - min_weight) * scaled).astype(np.float32)


def mask_id(mask: np.ndarray) -> str:
    """A short content id of a mask, recorded in the manifest."""
    return hashlib.sha256(np.ascontiguousarray(mask, np.float32).tobytes()).hexdigest()[:16]
