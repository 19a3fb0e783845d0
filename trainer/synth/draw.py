"""Drawing primitives: anti-aliased shapes by supersampling, sprites and their compositing."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

Color = tuple[float, float, float]
_SHIFT = 4  # fractional bits of cv2 drawing coordinates


def scaled(color: Color, factor: float) -> Color:
    """`color` made brighter (factor > 1) or darker."""
    return (color[0] * factor, color[1] * factor, color[2] * factor)


@dataclass(frozen=True)
class Sprite:
    """A small picture with coverage: premultiplied float colour and alpha in 0..1."""

    color: np.ndarray
    alpha: np.ndarray

    @property
    def size(self) -> tuple[int, int]:
        return self.alpha.shape[1], self.alpha.shape[0]

    def turned(self, quarter_turns: int) -> Sprite:
        """The sprite rotated by 90° steps (clockwise on screen)."""
        k = -quarter_turns % 4
        return Sprite(
            np.ascontiguousarray(np.rot90(self.color, k)),
            np.ascontiguousarray(np.rot90(self.alpha, k)),
        )


class Pen:
    """Draws in target pixels on a canvas `scale` times larger; `image()` averages it down.

    Coordinates are continuous: target pixel (i, j) spans [i, i + 1) x [j, j + 1).
    """

    def __init__(self, width: int, height: int, scale: int = 4, fill: Color | None = None) -> None:
        self.width, self.height, self.scale = width, height, scale
        self.color = np.zeros((height * scale, width * scale, 3), np.uint8)
        self.alpha = np.zeros((height * scale, width * scale), np.uint8)
        if fill is not None:
            self.color[:] = np.clip(fill, 0, 255)
            self.alpha[:] = 255

    def _xy(self, points: Sequence[Sequence[float]]) -> np.ndarray:
        pts = (np.asarray(points, np.float64) * self.scale - 0.5) * (1 << _SHIFT)
        return np.round(pts).astype(np.int32).reshape(-1, 2)

    def _paint(self, color: Color, draw) -> None:
        draw(self.color, tuple(float(np.clip(c, 0, 255)) for c in color))
        draw(self.alpha, 255)

    def poly(self, points: Sequence[Sequence[float]], color: Color) -> None:
        pts = self._xy(points)
        self._paint(color, lambda img, c: cv2.fillPoly(img, [pts], c, cv2.LINE_8, _SHIFT))

    def rect(self, x: float, y: float, w: float, h: float, color: Color) -> None:
        self.poly([(x, y), (x + w, y), (x + w, y + h), (x, y + h)], color)

    def circle(self, cx: float, cy: float, r: float, color: Color) -> None:
        (c,) = self._xy([(cx, cy)])
        radius = round(r * self.scale * (1 << _SHIFT))
        self._paint(color, lambda img, v: cv2.circle(img, c, radius, v, -1, cv2.LINE_8, _SHIFT))

    def ellipse(self, cx: float, cy: float, rx: float, ry: float, color: Color) -> None:
        (c,) = self._xy([(cx, cy)])
        axes = (round(rx * self.scale * (1 << _SHIFT)), round(ry * self.scale * (1 << _SHIFT)))
        self._paint(
            color,
            lambda img, v: cv2.ellipse(img, c, axes, 0, 0, 360, v, -1, cv2.LINE_8, _SHIFT),
        )

    def line(self, points: Sequence[Sequence[float]], width: float, color: Color) -> None:
        pts = self._xy(points)
        thickness = max(1, round(width * self.scale))
        self._paint(
            color,
            lambda img, v: cv2.polylines(img, [pts], False, v, thickness, cv2.LINE_8, _SHIFT),
        )

    def ring(self, cx: float, cy: float, r: float, width: float, color: Color) -> None:
        (c,) = self._xy([(cx, cy)])
        radius = round((r - width / 2) * self.scale * (1 << _SHIFT))
        thickness = max(1, round(width * self.scale))
        self._paint(
            color, lambda img, v: cv2.circle(img, c, radius, v, thickness, cv2.LINE_8, _SHIFT)
        )

    def outline(self, x: float, y: float, w: float, h: float, width: float, color: Color) -> None:
        """A rectangle's border, `width` thick, drawn inside the rectangle."""
        for rx, ry, rw, rh in (
            (x, y, w, width),
            (x, y + h - width, w, width),
            (x, y, width, h),
            (x + w - width, y, width, h),
        ):
            self.rect(rx, ry, rw, rh, color)

    def rounded(self, x: float, y: float, w: float, h: float, r: float, color: Color) -> None:
        self.rect(x + r, y, w - 2 * r, h, color)
        self.rect(x, y + r, w, h - 2 * r, color)
        for cx, cy in (
            (x + r, y + r),
            (x + w - r, y + r),
            (x + r, y + h - r),
            (x + w - r, y + h - r),
        ):
            self.circle(cx, cy, r, color)

    def gradient(
        self,
        x: float,
        y: float,
        w: float,
        h: float,
        top: Color,
        bottom: Color,
        vertical: bool = True,
    ) -> None:
        """A rectangle shaded linearly from `top` to `bottom` (left to right if not vertical)."""
        s = self.scale
        x0, y0 = max(0, round(x * s)), max(0, round(y * s))
        x1, y1 = min(self.width * s, round((x + w) * s)), min(self.height * s, round((y + h) * s))
        if x1 <= x0 or y1 <= y0:
            return
        n = (y1 - y0) if vertical else (x1 - x0)
        t = np.linspace(0.0, 1.0, n, dtype=np.float32)[:, None]
        ramp = np.asarray(top, np.float32) * (1 - t) + np.asarray(bottom, np.float32) * t
        ramp = ramp[:, None, :] if vertical else ramp[None, :, :]
        self.color[y0:y1, x0:x1] = np.clip(ramp, 0, 255).astype(np.uint8)
        self.alpha[y0:y1, x0:x1] = 255

    def text(
        self, text: str, x: float, y: float, height: float, color: Color, weight: float = 1.0
    ) -> None:
        """`text` with its baseline-left corner at (x, y), about `height` pixels tall."""
        font = cv2.FONT_HERSHEY_SIMPLEX
        size = height * self.scale / 22.0
        thickness = max(1, round(weight * height * self.scale / 9.0))
        org = (round(x * self.scale), round(y * self.scale))
        self._paint(
            color,
            lambda img, v: cv2.putText(img, text, org, font, size, v, thickness, cv2.LINE_8),
        )

    def image(self) -> np.ndarray:
        """The drawing averaged down to target size, as 8-bit BGR."""
        return cv2.resize(self.color, (self.width, self.height), interpolation=cv2.INTER_AREA)

    def sprite(self) -> Sprite:
        """The drawing as a sprite: premultiplied colour plus coverage."""
        size = (self.width, self.height)
        alpha = self.alpha.astype(np.float32) / 255.0
        color = self.color.astype(np.float32) * alpha[..., None]
        return Sprite(
            cv2.resize(color, size, interpolation=cv2.INTER_AREA),
            cv2.resize(alpha, size, interpolation=cv2.INTER_AREA),
        )


def placement_matrix(sprite: Sprite, centre: tuple[float, float], angle_deg: float) -> np.ndarray:
    """2x3 affine from sprite pixels to canvas pixels: sprite centre on `centre`, turned."""
    w, h = sprite.size
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), -angle_deg, 1.0)
    matrix[:, 2] += np.asarray(centre) - ((w - 1) / 2, (h - 1) / 2)
    return matrix


def _region(matrix: np.ndarray, size: tuple[int, int], pad: int, shape) -> tuple[int, ...]:
    w, h = size
    corners = np.array([[0, 0, 1], [w, 0, 1], [0, h, 1], [w, h, 1]], np.float64) - [0.5, 0.5, 0]
    xy = corners @ matrix.T
    x0, y0 = np.floor(xy.min(axis=0)).astype(int) - pad
    x1, y1 = np.ceil(xy.max(axis=0)).astype(int) + pad + 1
    return max(0, x0), max(0, y0), min(shape[1], x1), min(shape[0], y1)


def composite(
    canvas: np.ndarray,
    sprite: Sprite,
    centre: tuple[float, float],
    angle_deg: float = 0.0,
    gain: Color = (1.0, 1.0, 1.0),
    shadow: float = 0.0,
) -> None:
    """Paint `sprite` onto the uint8 canvas in place, optionally over a soft drop shadow."""
    matrix = placement_matrix(sprite, centre, angle_deg)
    x0, y0, x1, y1 = _region(matrix, sprite.size, 8 if shadow else 1, canvas.shape)
    if x1 <= x0 or y1 <= y0:
        return
    local = matrix.copy()
    local[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    color = cv2.warpAffine(sprite.color, local, size, flags=cv2.INTER_LINEAR)
    alpha = cv2.warpAffine(sprite.alpha, local, size, flags=cv2.INTER_LINEAR)
    region = canvas[y0:y1, x0:x1].astype(np.float32)
    if shadow:
        dark = cv2.GaussianBlur(np.roll(alpha, (3, 2), axis=(0, 1)), (0, 0), 2.5)
        region *= (1.0 - shadow * dark)[..., None]
    region = region * (1.0 - alpha)[..., None] + color * np.asarray(gain, np.float32)
    canvas[y0:y1, x0:x1] = np.clip(region, 0, 255).astype(np.uint8)


def coverage_in_box(
    sprite: Sprite,
    centre: tuple[float, float],
    angle_deg: float,
    box: tuple[int, int, int, int],
) -> np.ndarray:
    """Where the placed sprite covers the box (x, y, w, h, canvas pixels): bool, box-sized."""
    x, y, w, h = box
    matrix = placement_matrix(sprite, centre, angle_deg)
    matrix[:, 2] -= (x, y)
    return cv2.warpAffine(sprite.alpha, matrix, (w, h), flags=cv2.INTER_LINEAR) > 0.5
