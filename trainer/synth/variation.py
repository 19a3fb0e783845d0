"""What changes from photo to photo: board pose, lighting, optics, sensor noise, part tolerances.

Training photos come from the `none` domain; `--shift` moves validation and test photos to a
harder one (darker or brighter, uneven light, softer focus, more noise, larger rotation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from trainer.synth.draw import Color

BASE_BLUR = 0.6  # the lens at its best: the reference image is this sharp
NOISE_PAD = 64  # the noise field is this much larger than the frame, for random offsets


@dataclass(frozen=True)
class Domain:
    """How much photos of one capture domain vary."""

    gain: tuple[float, float]
    gradient: float  # illumination change from one side of the frame to the other
    vignette: float
    blur: tuple[float, float]  # extra Gaussian sigma, pixels
    noise: tuple[float, float]  # sensor noise sigma, grey levels
    offset_px: float  # board shift along each axis
    rotation_deg: float
    tint: float  # white-balance change per channel


DOMAINS: dict[str, Domain] = {
    "none": Domain((0.9, 1.1), 0.12, 0.05, (0.0, 0.7), (1.0, 2.5), 25.0, 2.0, 0.03),
    "mild": Domain((0.78, 1.22), 0.25, 0.10, (0.3, 1.2), (2.0, 4.0), 30.0, 3.0, 0.06),
    "moderate": Domain((0.65, 1.35), 0.40, 0.15, (0.6, 1.8), (3.0, 6.5), 35.0, 4.0, 0.10),
    "severe": Domain((0.5, 1.5), 0.55, 0.20, (1.0, 2.6), (5.0, 10.0), 40.0, 5.0, 0.15),
}


@dataclass(frozen=True)
class Shot:
    """The conditions of one photo."""

    dx: float = 0.0
    dy: float = 0.0
    angle_deg: float = 0.0
    gain: float = 1.0
    gradient: tuple[float, float] = (0.0, 0.0)
    vignette: float = 0.0
    blur: float = 0.0
    noise: float = 0.0
    tint: Color = (1.0, 1.0, 1.0)
    noise_origin: tuple[int, int] = (0, 0)


def sample_shot(rng: np.random.Generator, domain: Domain) -> Shot:
    """Random conditions within a domain."""
    direction = rng.uniform(0, 2 * math.pi)
    strength = rng.uniform(0, domain.gradient)
    tint = tuple(float(t) for t in 1.0 + rng.uniform(-domain.tint, domain.tint, 3))
    return Shot(
        dx=float(rng.uniform(-domain.offset_px, domain.offset_px)),
        dy=float(rng.uniform(-domain.offset_px, domain.offset_px)),
        angle_deg=float(rng.uniform(-domain.rotation_deg, domain.rotation_deg)),
        gain=float(rng.uniform(*domain.gain)),
        gradient=(strength * math.cos(direction), strength * math.sin(direction)),
        vignette=float(rng.uniform(0, domain.vignette)),
        blur=float(rng.uniform(*domain.blur)),
        noise=float(rng.uniform(*domain.noise)),
        tint=tint,
        noise_origin=(int(rng.integers(NOISE_PAD)), int(rng.integers(NOISE_PAD))),
    )


def board_tint(rng: np.random.Generator) -> Color:
    """Solder mask and laminate differ a little from batch to batch."""
    return tuple(float(t) for t in rng.uniform(0.96, 1.04, 3))


def part_tolerance(rng: np.random.Generator) -> tuple[float, float, float]:
    """Placement of a good part: about a pixel off and under a degree turned."""
    dx, dy = np.clip(rng.normal(0.0, 0.6, 2), -1.5, 1.5)
    angle = float(np.clip(rng.normal(0.0, 0.4), -1.0, 1.0))
    return float(dx), float(dy), angle


def part_gain(rng: np.random.Generator) -> Color:
    """Moulding and plating differ a little between parts of one type."""
    level = rng.uniform(0.94, 1.06)
    return tuple(float(level * g) for g in rng.uniform(0.97, 1.03, 3))


def pose_matrix(
    shot: Shot, canvas_centre: tuple[float, float], frame: tuple[int, int]
) -> np.ndarray:
    """2x3 affine from canvas pixels to photo pixels: the board turned and shifted."""
    matrix = cv2.getRotationMatrix2D(canvas_centre, shot.angle_deg, 1.0)
    matrix[:, 2] += np.array([(frame[0] - 1) / 2, (frame[1] - 1) / 2]) - canvas_centre
    matrix[:, 2] += (shot.dx, shot.dy)
    return matrix


def noise_field(rng: np.random.Generator, frame: tuple[int, int]) -> np.ndarray:
    """Unit Gaussian sensor noise, larger than the frame; each photo takes a shifted window."""
    width, height = frame
    return rng.standard_normal((height + NOISE_PAD, width + NOISE_PAD, 3), np.float32)


def develop(frame: np.ndarray, shot: Shot, noise: np.ndarray) -> np.ndarray:
    """Optics, illumination and sensor applied to a sharp, evenly lit frame (uint8 BGR)."""
    height, width = frame.shape[:2]
    image = cv2.GaussianBlur(frame, (0, 0), math.hypot(BASE_BLUR, shot.blur))
    x = np.linspace(-0.5, 0.5, width, dtype=np.float32)
    y = np.linspace(-0.5, 0.5, height, dtype=np.float32)[:, None]
    light = 1.0 + shot.gradient[0] * x + shot.gradient[1] * y - shot.vignette * (x**2 + y**2) * 2
    light = (light * shot.gain)[..., None] * np.asarray(shot.tint, np.float32)
    out = image.astype(np.float32) * light
    if shot.noise > 0:
        ox, oy = shot.noise_origin
        out += noise[oy : oy + height, ox : ox + width] * np.float32(shot.noise)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
