"""Heatmap overlays: an anomaly map on the calibrated scale drawn over its crop."""

from __future__ import annotations

import cv2
import numpy as np

VMAX = 2.0  # the top of the colour scale, in multiples of the threshold (1.0)


def colourise(amap: np.ndarray, size: tuple[int, int], vmax: float = VMAX) -> np.ndarray:
    """JET colours (BGR) of `amap` resized to `size` (width, height); 1.0 is the threshold."""
    scaled = np.clip(amap.astype(np.float32) / vmax, 0.0, 1.0)
    scaled = cv2.resize(scaled, size, interpolation=cv2.INTER_LINEAR)
    return cv2.applyColorMap((scaled * 255).astype(np.uint8), cv2.COLORMAP_JET)


def overlay_heatmap(
    crop_bgr: np.ndarray, amap: np.ndarray, vmax: float = VMAX, alpha: float = 0.45
) -> np.ndarray:
    """Blend the colourised map over the crop; a fixed scale keeps overlays comparable."""
    height, width = crop_bgr.shape[:2]
    heat = colourise(amap, (width, height), vmax)
    return cv2.addWeighted(crop_bgr, 1.0 - alpha, heat, alpha, 0.0)
