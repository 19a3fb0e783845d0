"""Cables lying on the board: bundles of coloured wires along smooth curves."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from trainer.synth.draw import Color, scaled

WIRE_COLORS: tuple[Color, ...] = (
    (40, 40, 200),
    (40, 40, 40),
    (180, 90, 30),
    (40, 200, 230),
    (225, 228, 228),
    (30, 120, 240),
    (60, 150, 50),
    (150, 150, 150),
)
_COPPER: Color = (70, 130, 200)
_SHIFT = 4


@dataclass(frozen=True)
class Cable:
    """Wires side by side along `path` (N x 2 canvas pixels, the bundle's centre line)."""

    path: np.ndarray
    colors: tuple[Color, ...]
    wire_width: float
    bare_end: bool = False

    @property
    def width(self) -> float:
        return len(self.colors) * self.wire_width

    def wires(self) -> list[np.ndarray]:
        """Each wire's centre line."""
        tangent = np.gradient(self.path, axis=0)
        tangent /= np.linalg.norm(tangent, axis=1, keepdims=True) + 1e-9
        normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
        n = len(self.colors)
        return [self.path + normal * (i - (n - 1) / 2) * self.wire_width for i in range(n)]


def curve(start: np.ndarray, end: np.ndarray, bend: float) -> np.ndarray:
    """A quadratic Bézier from `start` to `end`, bowed `bend` pixels to its left."""
    start, end = np.asarray(start, np.float64), np.asarray(end, np.float64)
    chord = end - start
    length = float(np.linalg.norm(chord))
    control = (start + end) / 2 + np.array([-chord[1], chord[0]]) / max(length, 1e-9) * bend
    t = np.linspace(0.0, 1.0, max(8, int(length / 3)))[:, None]
    return (1 - t) ** 2 * start + 2 * (1 - t) * t * control + t**2 * end


def random_colors(rng: np.random.Generator, count: int) -> tuple[Color, ...]:
    """`count` wire colours, neighbours different."""
    picks = [int(rng.integers(len(WIRE_COLORS)))]
    while len(picks) < count:
        pick = int(rng.integers(len(WIRE_COLORS)))
        if pick != picks[-1]:
            picks.append(pick)
    return tuple(WIRE_COLORS[i] for i in picks)


def _pts(points: np.ndarray, origin: tuple[float, float]) -> np.ndarray:
    return np.round((points - origin) * (1 << _SHIFT)).astype(np.int32)


def draw_cable(canvas: np.ndarray, cable: Cable) -> None:
    """Paint the cable and its soft shadow onto the uint8 canvas in place."""
    pad = cable.width + 14
    x0, y0 = np.floor(cable.path.min(axis=0) - pad).astype(int).clip(0)
    x1, y1 = np.ceil(cable.path.max(axis=0) + pad).astype(int)
    x1, y1 = min(x1, canvas.shape[1]), min(y1, canvas.shape[0])
    if x1 <= x0 or y1 <= y0:
        return
    region = canvas[y0:y1, x0:x1]
    wires = [_pts(w, (x0, y0)) for w in cable.wires()]
    thick = max(1, round(cable.wire_width))
    cover = np.zeros(region.shape[:2], np.uint8)
    cv2.polylines(cover, wires, False, 255, thick + 1, cv2.LINE_AA, _SHIFT)
    cover = np.roll(cover, (5, 4), axis=(0, 1)).astype(np.float32) / 255.0
    shadow = cv2.GaussianBlur(cover, (0, 0), 3.0)
    region[:] = (region * (1.0 - 0.45 * shadow)[..., None]).astype(np.uint8)
    highlight = np.round(-0.22 * cable.wire_width * (1 << _SHIFT)).astype(np.int32)
    for wire, color in zip(wires, cable.colors, strict=True):
        cv2.polylines(region, [wire], False, scaled(color, 0.55), thick, cv2.LINE_AA, _SHIFT)
        cv2.polylines(region, [wire], False, color, max(1, thick - 2), cv2.LINE_AA, _SHIFT)
        shine = tuple(min(255.0, c * 1.3 + 40) for c in color)
        cv2.polylines(
            region, [wire + highlight], False, shine, max(1, thick // 4), cv2.LINE_AA, _SHIFT
        )
        if cable.bare_end:
            tip = wire[-max(3, len(wire) // 12) :]
            cv2.polylines(region, [tip], False, _COPPER, max(1, thick // 2), cv2.LINE_AA, _SHIFT)


def coverage(cable: Cable, box: tuple[int, int, int, int]) -> np.ndarray:
    """Where the cable covers the box (x, y, w, h, canvas pixels): bool, box-sized."""
    x, y, w, h = box
    mask = np.zeros((h, w), np.uint8)
    wires = [_pts(wire, (x, y)) for wire in cable.wires()]
    cv2.polylines(mask, wires, False, 255, max(1, round(cable.wire_width)), cv2.LINE_8, _SHIFT)
    return mask > 0


def overlaps(cable: Cable, box: tuple[int, int, int, int], margin: int = 0) -> bool:
    """Whether any wire comes within `margin` pixels of the box (x, y, w, h)."""
    x, y, w, h = box
    return bool(coverage(cable, (x - margin, y - margin, w + 2 * margin, h + 2 * margin)).any())


def stray_cable(
    rng: np.random.Generator, boxes: list[tuple[int, int, int, int]], tries: int = 12
) -> Cable | None:
    """A cable running alongside one of the boxes, close to it but over none of them."""
    for _ in range(tries):
        x, y, w, h = boxes[int(rng.integers(len(boxes)))]
        colors = random_colors(rng, int(rng.integers(1, 4)))
        cable_w = len(colors) * 8.0
        gap = rng.uniform(12, 40) + cable_w / 2
        side = int(rng.integers(4))
        extra = rng.uniform(60, 220, 2)
        if side in (0, 1):  # above or below, running horizontally
            cy = y - gap if side == 0 else y + h + gap
            start, end = np.array([x - extra[0], cy]), np.array([x + w + extra[1], cy])
        else:  # left or right, running vertically
            cx = x - gap if side == 2 else x + w + gap
            start, end = np.array([cx, y - extra[0]]), np.array([cx, y + h + extra[1]])
        bend = rng.uniform(10, 40) * (1 if side in (1, 2) else -1)  # bowed away from the box
        cable = Cable(curve(start, end, bend), colors, 8.0)
        if not any(overlaps(cable, box, margin=10) for box in boxes):
            return cable
    return None
