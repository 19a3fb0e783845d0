"""The bare board of a station: solder mask, copper, vias, silkscreen and the other parts.

Rendered once per station; the connectors' footprints are drawn in, their parts are not.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from trainer.synth.draw import Color, Pen, Sprite, composite, scaled
from trainer.synth.parts import BLACK, GOLD, HOLE, SILK, STEEL, STEEL_DARK, STEEL_HI, TIN

Rect = tuple[float, float, float, float]  # x, y, w, h

MASK_GREEN: Color = (36, 88, 26)
COPPER_UNDER_MASK: Color = (52, 122, 44)
LAMINATE: Color = (92, 140, 150)
_SCALE = 2  # supersampling of the board drawing
_CELL = 4  # occupancy grid cell, pixels


@dataclass(frozen=True)
class Footprint:
    """A connector's footprint on the board and the box kept free of other parts."""

    sprite: Sprite
    centre: tuple[float, float]
    label: str
    box: Rect


class _Occupancy:
    """Which parts of the board are taken, on a coarse grid."""

    def __init__(self, width: int, height: int) -> None:
        self.grid = np.zeros((height // _CELL + 1, width // _CELL + 1), bool)

    def _cells(self, rect: Rect) -> tuple[slice, slice]:
        x, y, w, h = rect
        x0, y0 = max(0, int(x // _CELL)), max(0, int(y // _CELL))
        return slice(y0, int((y + h) // _CELL) + 1), slice(x0, int((x + w) // _CELL) + 1)

    def free(self, rect: Rect) -> bool:
        x, y, w, h = rect
        rows, cols = self._cells(rect)
        inside = x >= 0 and y >= 0 and (y + h) // _CELL < self.grid.shape[0]
        inside = inside and (x + w) // _CELL < self.grid.shape[1]
        return inside and not self.grid[rows, cols].any()

    def take(self, rect: Rect) -> None:
        self.grid[self._cells(rect)] = True


def _grown(rect: Rect, by: float) -> Rect:
    x, y, w, h = rect
    return x - by, y - by, w + 2 * by, h + 2 * by


def _chip(pen: Pen, rng: np.random.Generator, rect: Rect, body: Color) -> None:
    """A two-terminal chip (resistor, capacitor, LED) on its two pads."""
    x, y, w, h = rect
    along = w >= h
    length, width = (w, h) if along else (h, w)
    end = length * 0.24

    def span(a: float, b: float, c0: float, c1: float, color: Color) -> None:
        if along:
            pen.rect(x + a, y + c0, b - a, c1 - c0, color)
        else:
            pen.rect(x + c0, y + a, c1 - c0, b - a, color)

    span(-1.5, end + 1.5, -1, width + 1, GOLD)
    span(length - end - 1.5, length + 1.5, -1, width + 1, GOLD)
    span(0, end, 0, width, TIN)
    span(length - end, length, 0, width, TIN)
    span(end, length - end, 0.5, width - 0.5, scaled(body, rng.uniform(0.9, 1.1)))


def _leaded(pen: Pen, rect: Rect, leads: int, sides: int, marking: str) -> None:
    """A black moulded package with gull-wing leads on its 2 long sides or all 4 sides."""
    x, y, w, h = rect
    lead = 7.0
    wide = w >= h
    inset_x = lead if sides == 4 or not wide else 0.0
    inset_y = lead if sides == 4 or wide else 0.0
    bx, by, bw, bh = x + inset_x, y + inset_y, w - 2 * inset_x, h - 2 * inset_y
    pins: list[Rect] = []
    if inset_y:
        pitch = bw / leads
        for i in range(leads):
            cx = bx + (i + 0.5) * pitch
            pins += [(cx - pitch * 0.25, ly, pitch * 0.5, lead) for ly in (y, y + h - lead)]
    if inset_x:
        pitch = bh / leads
        for i in range(leads):
            cy = by + (i + 0.5) * pitch
            pins += [(lx, cy - pitch * 0.25, lead, pitch * 0.5) for lx in (x, x + w - lead)]
    for px, py, pw, ph in pins:
        pen.rect(px - 1, py - 1, pw + 2, ph + 2, GOLD)
    for pin in pins:
        pen.rect(*pin, TIN)
    pen.gradient(bx, by, bw, bh, scaled(BLACK, 1.4), scaled(BLACK, 1.0))
    pen.circle(bx + 4, by + 4, 2.0, scaled(BLACK, 0.6))
    if marking:
        pen.text(marking, bx + 4, by + bh / 2 + 3, min(8.0, bh / 3), (150, 150, 150))


def _electrolytic(pen: Pen, rect: Rect) -> None:
    x, y, w, _ = rect
    r = w / 2
    cx, cy = x + r, y + r
    pen.ring(cx, cy, r + 3, 2, SILK)
    pen.circle(cx, cy, r, STEEL_DARK)
    pen.circle(cx, cy, r - 2, STEEL)
    pen.circle(cx - r * 0.2, cy - r * 0.2, r * 0.5, STEEL_HI)
    pen.poly([(cx, cy), (cx + r - 2, cy - r * 0.45), (cx + r - 2, cy + r * 0.45)], (120, 60, 30))
    pen.line([(cx - r * 0.5, cy), (cx + r * 0.3, cy)], 1.5, STEEL_DARK)
    pen.line([(cx - r * 0.1, cy - r * 0.45), (cx - r * 0.1, cy + r * 0.45)], 1.5, STEEL_DARK)
    pen.text("+", x - 10, y + 8, 10, SILK)


def _crystal(pen: Pen, rect: Rect) -> None:
    x, y, w, h = rect
    pen.rect(x - 4, y + h * 0.2, w + 8, h * 0.6, GOLD)
    pen.rounded(x, y, w, h, min(w, h) / 2, STEEL_DARK)
    pen.rounded(x + 2, y + 2, w - 4, h - 4, min(w, h) / 2 - 2, STEEL)


def _inductor(pen: Pen, rect: Rect) -> None:
    x, y, w, h = rect
    pen.rect(x - 2, y + h * 0.15, w + 4, h * 0.7, GOLD)
    pen.rounded(x, y, w, h, 4, (64, 64, 66))
    pen.text("4R7", x + w * 0.2, y + h * 0.62, h * 0.3, (170, 170, 170))


def _test_point(pen: Pen, rect: Rect) -> None:
    x, y, w, _ = rect
    pen.circle(x + w / 2, y + w / 2, w / 2, GOLD)
    pen.ring(x + w / 2, y + w / 2, w / 2 + 3, 1.5, SILK)


def _data_matrix(pen: Pen, rng: np.random.Generator, rect: Rect) -> None:
    """A silkscreened 2D code: dense, unique corners that registration can hold on to."""
    x, y, w, _ = rect
    cells = 14
    cell = w / cells
    pen.rect(x, y, w, w, SILK)
    bits = rng.random((cells - 2, cells - 2)) < 0.5
    for i, j in zip(*np.nonzero(bits), strict=True):
        pen.rect(x + (j + 1) * cell, y + (i + 1) * cell, cell, cell, MASK_GREEN)
    pen.rect(x, y + cell, cell, w - cell, SILK)
    for j in range(1, cells, 2):
        pen.rect(x + j * cell, y, cell, cell, MASK_GREEN)


def _barcode(pen: Pen, rng: np.random.Generator, rect: Rect) -> None:
    x, y, w, h = rect
    pos = x
    while pos < x + w - 4:
        bar = rng.choice([1.5, 3.0, 4.5])
        pen.rect(pos, y, bar, h, SILK)
        pos += bar + rng.choice([1.5, 3.0])


_Drawer = Callable[[Pen, np.random.Generator, Rect], None]
# designator prefix, how many, size (w, h), drawer
_OTHER_PARTS: list[tuple[str, int, tuple[float, float], _Drawer]] = [
    ("U", 2, (84, 84), lambda pen, rng, r: _leaded(pen, r, 10, 4, "STM32")),
    ("U", 8, (46, 34), lambda pen, rng, r: _leaded(pen, r, 4, 2, rng.choice(["LM358", "74HC"]))),
    ("C", 6, (52, 52), lambda pen, rng, r: _electrolytic(pen, r)),
    ("Y", 3, (46, 18), lambda pen, rng, r: _crystal(pen, r)),
    ("L", 5, (36, 36), lambda pen, rng, r: _inductor(pen, r)),
    ("Q", 14, (24, 14), lambda pen, rng, r: _leaded(pen, r, 1, 2, "")),
    ("TP", 10, (11, 11), lambda pen, rng, r: _test_point(pen, r)),
    ("R", 90, (16, 9), lambda pen, rng, r: _chip(pen, rng, r, (40, 40, 40))),
    ("C", 90, (16, 9), lambda pen, rng, r: _chip(pen, rng, r, (92, 130, 168))),
    ("R", 50, (12, 7), lambda pen, rng, r: _chip(pen, rng, r, (40, 40, 40))),
    ("D", 12, (16, 9), lambda pen, rng, r: _chip(pen, rng, r, (200, 225, 215))),
]


def _traces(pen: Pen, rng: np.random.Generator, keepouts: Sequence[Rect], count: int) -> None:
    """Copper traces under the mask: 45° routing that stops short of the footprints."""

    def blocked(px: float, py: float) -> bool:
        if not (0 <= px < pen.width and 0 <= py < pen.height):
            return True
        return any(x <= px <= x + w and y <= py <= y + h for x, y, w, h in keepouts)

    directions = [(np.cos(a), np.sin(a)) for a in np.arange(8) * np.pi / 4]
    for _ in range(count):
        point = np.array([rng.uniform(0, pen.width), rng.uniform(0, pen.height)])
        if blocked(*point):
            continue
        heading = int(rng.integers(8))
        width = float(rng.choice([3, 3, 4, 4, 5, 8, 12]))
        path = [point.copy()]
        for _ in range(int(rng.integers(2, 7))):
            step = np.array(directions[heading])
            for _ in range(int(rng.uniform(20, 220) // 4)):
                if blocked(*(point + step * (4 + width))):
                    break
                point = point + step * 4
            path.append(point.copy())
            heading = (heading + int(rng.choice([-2, -1, 1, 2]))) % 8
        pen.line(path, width, COPPER_UNDER_MASK)
        for end in (path[0], path[-1]):
            if rng.random() < 0.5:
                _via(pen, rng, *end)


def _via(pen: Pen, rng: np.random.Generator, x: float, y: float) -> None:
    if rng.random() < 0.6:
        pen.circle(x, y, 5, COPPER_UNDER_MASK)
        pen.circle(x, y, 2.2, scaled(MASK_GREEN, 0.7))
    else:
        pen.circle(x, y, 4.5, GOLD)
        pen.circle(x, y, 2, HOLE)


def _fiducial(pen: Pen, x: float, y: float) -> None:
    pen.circle(x, y, 13, LAMINATE)
    pen.circle(x, y, 6, TIN)


def _mounting_hole(pen: Pen, x: float, y: float) -> None:
    pen.circle(x, y, 30, GOLD)
    pen.circle(x, y, 19, HOLE)
    for a in np.arange(8) * np.pi / 4:
        pen.circle(x + 25 * np.cos(a), y + 25 * np.sin(a), 2, HOLE)


def _corner_mark(pen: Pen, x: float, y: float, sx: int, sy: int) -> None:
    pen.rect(x, y, 40 * sx, 3 * sy, SILK)
    pen.rect(x, y, 3 * sx, 40 * sy, SILK)


def _texture(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Uneven mask thickness (slow brightness drift) and fine grain."""
    h, w = image.shape[:2]
    drift = rng.normal(0.0, 1.0, (h // 48 + 2, w // 48 + 2)).astype(np.float32)
    drift = cv2.resize(drift, (w, h), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0.0, 2.5, (h, w, 1)).astype(np.float32)
    out = image.astype(np.float32) * (1.0 + 0.045 * drift[..., None]) + grain
    return np.clip(out, 0, 255).astype(np.uint8)


def render_board(
    rng: np.random.Generator,
    size: tuple[int, int],
    frame: Rect,
    footprints: Sequence[Footprint],
) -> np.ndarray:
    """The station's bare board (uint8 BGR, `size`), `frame` being what the camera sees."""
    width, height = size
    fx, fy, fw, fh = frame
    pen = Pen(width, height, _SCALE, fill=scaled(MASK_GREEN, rng.uniform(0.92, 1.08)))
    for _ in range(4):
        w, h = rng.uniform(120, 420), rng.uniform(100, 300)
        pen.rect(
            rng.uniform(0, width - w), rng.uniform(0, height - h), w, h, scaled(MASK_GREEN, 1.12)
        )
    outlines = [
        _grown(
            (
                fp.centre[0] - fp.sprite.size[0] / 2,
                fp.centre[1] - fp.sprite.size[1] / 2,
                *fp.sprite.size,
            ),
            2,
        )
        for fp in footprints
    ]
    _traces(pen, rng, outlines, count=int(width * height / 9000))

    taken = _Occupancy(width, height)
    for fp in footprints:
        taken.take(_grown(fp.box, 10))
    fiducials = [(fx + 70, fy + 60), (fx + fw - 70, fy + 60), (fx + 70, fy + fh - 60)]
    holes = [(fx + fw - 50, fy + fh - 50), (fx - 40, fy - 40), (fx + fw + 40, fy - 40)]
    for x, y in fiducials:
        _fiducial(pen, x, y)
        taken.take((x - 20, y - 20, 40, 40))
    for x, y in holes:
        _mounting_hole(pen, x, y)
        taken.take((x - 36, y - 36, 72, 72))
    for x, y, sx, sy in ((fx + 20, fy + 20, 1, 1), (fx + fw - 20, fy + fh - 20, -1, -1)):
        _corner_mark(pen, x, y, sx, sy)

    for prefix, count, (w, h), draw in _OTHER_PARTS:
        placed = 0
        for _ in range(count * 40):
            if placed == count:
                break
            pw, ph = (w, h) if rng.random() < 0.5 or w == h else (h, w)
            x, y = rng.uniform(0, width - pw), rng.uniform(14, height - ph)
            if not taken.free(_grown((x, y - 12, pw, ph + 12), 6)):
                continue
            taken.take(_grown((x, y - 12, pw, ph + 12), 6))
            draw(pen, rng, (x, y, pw, ph))
            pen.text(f"{prefix}{rng.integers(1, 99)}", x, y - 4, 8, SILK)
            placed += 1

    for text, text_h in (("EDGE-IO CTRL-9 REV C", 22), ("LOT 2438-A", 12), ("MADE IN EU", 12)):
        text_w = len(text) * text_h * 0.95
        for _ in range(200):
            x, y = rng.uniform(fx, fx + fw - text_w), rng.uniform(fy + text_h, fy + fh)
            if taken.free((x, y - text_h, text_w, text_h + 4)):
                taken.take((x, y - text_h, text_w, text_h + 4))
                pen.text(text, x, y, text_h, SILK, weight=1.2)
                break
    for draw, (w, h) in ((_data_matrix, (56, 56)), (_data_matrix, (42, 42)), (_barcode, (120, 26))):
        for _ in range(200):
            x, y = rng.uniform(fx, fx + fw - w), rng.uniform(fy, fy + fh - h)
            if taken.free(_grown((x, y, w, h), 4)):
                taken.take(_grown((x, y, w, h), 4))
                draw(pen, rng, (x, y, w, h))
                break
    for _ in range(int(width * height / 5000)):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        if taken.free((x - 6, y - 6, 12, 12)) and not any(
            ox - 6 <= x <= ox + ow + 6 and oy - 6 <= y <= oy + oh + 6 for ox, oy, ow, oh in outlines
        ):
            _via(pen, rng, x, y)

    image = _texture(pen.image(), rng)
    for fp in footprints:
        composite(image, fp.sprite, fp.centre)
        x, y, _, _ = fp.box
        label = Pen(32, 14, 4)
        label.text(fp.label, 1, 12, 11, SILK, weight=1.2)
        composite(image, label.sprite(), (x + 18.5, y + 8.5))
    return image
