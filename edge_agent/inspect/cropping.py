"""Connector crops: each box of the reference image, cut from a registered photo."""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from edge_agent.contracts.config import ConnectorSettings
from edge_agent.inspect.registration import Registration


def crop_connector(
    image_bgr: np.ndarray, registration: Registration, box: tuple[int, int, int, int]
) -> np.ndarray:
    """The box (x, y, w, h in reference pixels) as an h x w BGR crop in the reference frame."""
    x, y, width, height = box
    linear, offset = registration.matrix[:, :2], registration.matrix[:, 2]
    # Crop pixel (u, v) is reference pixel (x + u, y + v); warp only those pixels.
    crop_to_image = np.column_stack([linear, linear @ (x, y) + offset])
    return cv2.warpAffine(
        image_bgr,
        crop_to_image,
        (width, height),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REPLICATE,
    )


def crop_all(
    image_bgr: np.ndarray, registration: Registration, connectors: Mapping[str, ConnectorSettings]
) -> dict[str, np.ndarray]:
    """Crops of the enabled connectors, by connector id."""
    return {
        cid: crop_connector(image_bgr, registration, connector.box)
        for cid, connector in connectors.items()
        if connector.enabled
    }
