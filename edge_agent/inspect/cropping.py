"""Connector crops: each box of the reference image, cut from a registered photo.

A box that lies partly outside the photo would be cut with invented (replicated) pixels, so
`outside_the_photo` names the connectors that must not be scored.
"""

from __future__ import annotations

from collections.abc import Mapping

import cv2
import numpy as np

from edge_agent.contracts.config import ConfigError, ConnectorSettings
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


def check_boxes(
    connectors: Mapping[str, ConnectorSettings], reference_size: tuple[int, int], where: str
) -> None:
    """Refuse a box that reaches outside the reference image (`reference_size` = width, height):
    such a connector could never be photographed whole."""
    width, height = reference_size
    outside = [
        f"connectors.{cid}.box {list(c.box)} reaches outside the reference image {where} "
        f"({width}x{height} px)"
        for cid, c in connectors.items()
        if c.box[0] + c.box[2] > width or c.box[1] + c.box[3] > height
    ]
    if outside:
        raise ConfigError("\n".join(outside))


_SAMPLES = 64  # box positions tested per axis: the fraction outside is exact to ~1/64 of a side


def outside_fraction(
    image_shape: tuple[int, ...], registration: Registration, box: tuple[int, int, int, int]
) -> float:
    """The fraction of the box's area that falls outside the photographed pixels."""
    x, y, width, height = box
    us = np.linspace(x, x + width - 1, min(width, _SAMPLES))
    vs = np.linspace(y, y + height - 1, min(height, _SAMPLES))
    grid = np.stack([*np.meshgrid(us, vs), np.ones((len(vs), len(us)))], axis=-1)
    px, py = np.moveaxis(grid @ registration.matrix.T, -1, 0)
    rows, cols = image_shape[:2]
    inside = (px >= -0.5) & (px <= cols - 0.5) & (py >= -0.5) & (py <= rows - 0.5)
    return 1.0 - float(inside.mean())


def outside_the_photo(
    image_shape: tuple[int, ...],
    registration: Registration,
    connectors: Mapping[str, ConnectorSettings],
    limit: float,
) -> dict[str, float]:
    """Enabled connectors whose box lies more than `limit` (area fraction) outside the photo."""
    fractions = {
        cid: outside_fraction(image_shape, registration, connector.box)
        for cid, connector in connectors.items()
        if connector.enabled
    }
    return {cid: fraction for cid, fraction in fractions.items() if fraction > limit}


def crop_all(
    image_bgr: np.ndarray, registration: Registration, connectors: Mapping[str, ConnectorSettings]
) -> dict[str, np.ndarray]:
    """Crops of the enabled connectors, by connector id."""
    return {
        cid: crop_connector(image_bgr, registration, connector.box)
        for cid, connector in connectors.items()
        if connector.enabled
    }
