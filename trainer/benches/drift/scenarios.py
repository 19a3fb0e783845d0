"""The drift benchmark's scenarios: what is done to each board photo, from which board on.

Every change is a pure function of a BGR photo and a strength in [0, 1] (0: untouched,
1: the full change), so a step is strength 1 from the change on and a ramp rises linearly.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

CAPTURE = "capture"
GAIN_DOWN, GAIN_UP = 0.7, 1.3
BLUR_SIGMA_PX = 2.0
TURN_DEG = 1.5
SHIFT_PX = 12.0
TINT_FACTOR = 0.6  # the tinted connector's strongest colour channel times this

Box = tuple[int, int, int, int]


@dataclass(frozen=True)
class Frame:
    """What a change may need of one photo: the connector box to tint and its colour channel,
    and the photo's reference-to-photo affine (2x3) that places that box."""

    box: Box
    truth: np.ndarray
    channel: int = 2


def gain(image: np.ndarray, factor: float) -> np.ndarray:
    """Every pixel times `factor`, clipped to 255."""
    return np.clip(image.astype(np.float32) * factor + 0.5, 0, 255).astype(np.uint8)


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """A Gaussian blur of `sigma` pixels (none at 0)."""
    if sigma <= 0:
        return image.copy()
    return cv2.GaussianBlur(image, (0, 0), sigma)


def turn(image: np.ndarray, degrees: float) -> np.ndarray:
    """The photo turned by `degrees` (counter-clockwise) about its centre."""
    height, width = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), degrees, 1.0)
    return _warp(image, matrix)


def shift(image: np.ndarray, dx: float, dy: float = 0.0) -> np.ndarray:
    """The photo moved by (dx, dy) pixels, the edge pixels repeated into the gap."""
    return _warp(image, np.array([[1.0, 0.0, dx], [0.0, 1.0, dy]]))


def _warp(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Lanczos, not bilinear: a bilinear sub-pixel warp smooths the sensor noise (Laplacian
    variance x0.7 at a 1.5 deg turn), which a real camera move does not."""
    height, width = image.shape[:2]
    return cv2.warpAffine(
        image, matrix, (width, height), flags=cv2.INTER_LANCZOS4, borderMode=cv2.BORDER_REPLICATE
    )


def box_mask(shape: tuple[int, ...], box: Box, truth: np.ndarray) -> np.ndarray:
    """Boolean mask of the photo pixels inside a reference box placed by `truth`."""
    x, y, w, h = box
    right, bottom = x + w - 1, y + h - 1
    corners = np.array([(x, y), (right, y), (right, bottom), (x, bottom)], np.float64)
    placed = corners @ truth[:, :2].T + truth[:, 2]
    mask = np.zeros(shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, np.round(placed).astype(np.int32), 1)
    return mask.astype(bool)


def tint(image: np.ndarray, box: Box, truth: np.ndarray, channel: int, factor: float) -> np.ndarray:
    """One colour channel of the pixels in one connector's box times `factor` (clipped);
    the rest as is."""
    out = image.copy()
    mask = box_mask(image.shape, box, truth)
    pixels = image[mask, channel].astype(np.float32) * factor + 0.5
    out[mask, channel] = np.clip(pixels, 0, 255).astype(np.uint8)
    return out


Apply = Callable[[np.ndarray, float, Frame], np.ndarray]


@dataclass(frozen=True)
class Change:
    """A change of the line: what it is, the subject a monitor must name (None: the tinted
    connector), whether a warning suffices (registration absorbs it), and the change."""

    label: str
    subject: str | None
    warning_suffices: bool
    apply: Apply


CHANGES: dict[str, Change] = {
    "gain_down": Change(
        f"gain x{GAIN_DOWN}", CAPTURE, False, lambda im, s, f: gain(im, 1 + s * (GAIN_DOWN - 1))
    ),
    "gain_up": Change(
        f"gain x{GAIN_UP}", CAPTURE, False, lambda im, s, f: gain(im, 1 + s * (GAIN_UP - 1))
    ),
    "blur": Change(
        f"blur sigma {BLUR_SIGMA_PX:g} px",
        CAPTURE,
        False,
        lambda im, s, f: blur(im, s * BLUR_SIGMA_PX),
    ),
    "turn": Change(
        f"turn {TURN_DEG:g} deg", CAPTURE, True, lambda im, s, f: turn(im, s * TURN_DEG)
    ),
    "shift": Change(
        f"shift {SHIFT_PX:g} px", CAPTURE, True, lambda im, s, f: shift(im, s * SHIFT_PX)
    ),
    "tint": Change(
        f"tint: colour channel x{TINT_FACTOR}",
        None,
        False,
        lambda im, s, f: tint(im, f.box, f.truth, f.channel, 1 + s * (TINT_FACTOR - 1)),
    ),
}


@dataclass(frozen=True)
class Scenario:
    """One stream on a fresh agent: `prefix` clean boards, then the change (none: clean).

    A step holds full strength for `after` boards; a ramp rises linearly over `ramp`
    boards (the last of them at full strength) and is then held for `after` boards.
    """

    name: str
    kind: str  # "step", "ramp" or "clean"
    change: str | None
    prefix: int
    ramp: int = 0
    after: int = 0

    @property
    def boards(self) -> int:
        return self.prefix + self.ramp + self.after

    @property
    def reference_index(self) -> int:
        """The board delays are counted from: the first changed board of a step, the
        first full-strength board of a ramp (its last ramp board)."""
        return self.prefix + max(self.ramp - 1, 0)

    def strength(self, index: int) -> float:
        """How much of the change board `index` (0-based) carries."""
        if self.change is None or index < self.prefix:
            return 0.0
        if self.kind == "ramp":
            return min(1.0, (index - self.prefix + 1) / self.ramp)
        return 1.0

    def label(self) -> str:
        return (
            "clean stream" if self.change is None else f"{self.kind} {CHANGES[self.change].label}"
        )


def scenarios(
    prefix: int, step_after: int, ramp: int, ramp_hold: int, clean: int
) -> list[Scenario]:
    """Every scenario in order: the steps, the ramps, then the clean stream."""
    steps = [Scenario(f"step-{c}", "step", c, prefix, after=step_after) for c in CHANGES]
    ramps = [Scenario(f"ramp-{c}", "ramp", c, prefix, ramp, ramp_hold) for c in CHANGES]
    return [*steps, *ramps, Scenario("clean", "clean", None, clean)]


def most_colourful(reference: np.ndarray, boxes: dict[str, Box]) -> tuple[str, int]:
    """The connector whose box in the reference image has the highest mean saturation, and
    its strongest colour channel (BGR index): where a colour change shows best."""
    saturation = cv2.cvtColor(reference, cv2.COLOR_BGR2HSV)[..., 1]

    def inside(image: np.ndarray, cid: str) -> np.ndarray:
        x, y, w, h = boxes[cid]
        return image[y : y + h, x : x + w]

    chosen = max(boxes, key=lambda cid: float(inside(saturation, cid).mean()))
    return chosen, int(np.argmax(inside(reference, chosen).reshape(-1, 3).mean(axis=0)))
