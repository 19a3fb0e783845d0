"""The connector types, drawn from above: the part itself and its footprint on the board.

Both sprites of a part share one size and centre, so a part placed on its footprint covers
its pads; the footprint (pads, holes, silkscreen outline) is what a missing part leaves.
About 8 pixels per millimetre.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from trainer.synth.draw import Color, Pen, Sprite, scaled

EDGE = 6  # sprite border around the body: room for the silkscreen outline

GOLD: Color = (55, 165, 212)
GOLD_HI: Color = (150, 225, 248)
TIN: Color = (186, 188, 190)
HOLE: Color = (24, 26, 28)
BLACK: Color = (38, 36, 35)
IVORY: Color = (214, 228, 236)
BEIGE: Color = (168, 204, 226)
STEEL: Color = (176, 180, 184)
STEEL_HI: Color = (226, 228, 230)
STEEL_DARK: Color = (112, 114, 118)
TERMINAL_GREEN: Color = (72, 148, 40)
ACTUATOR_BROWN: Color = (48, 96, 150)
RED: Color = (40, 40, 190)
SILK: Color = (222, 228, 226)


@dataclass(frozen=True)
class Part:
    """A connector drawn twice at the same scale and centre: the part, and its footprint."""

    body: Sprite
    footprint: Sprite

    @property
    def size(self) -> tuple[int, int]:
        return self.body.size

    def turned(self, quarter_turns: int) -> Part:
        return Part(self.body.turned(quarter_turns), self.footprint.turned(quarter_turns))


class _Sketch:
    """A part in progress: a body pen and a footprint pen sharing coordinates."""

    def __init__(self, body_w: float, body_h: float) -> None:
        self.w, self.h = body_w, body_h
        size = round(body_w) + 2 * EDGE, round(body_h) + 2 * EDGE
        self.body, self.pads = Pen(*size), Pen(*size)
        self.pads.outline(
            EDGE - 5, EDGE - 5, size[0] - 2 * EDGE + 10, size[1] - 2 * EDGE + 10, 2, SILK
        )

    def at(self, x: float, y: float) -> tuple[float, float]:
        return EDGE + x, EDGE + y

    def tht_pad(self, x: float, y: float, r: float, hole: float, square=False) -> None:
        cx, cy = self.at(x, y)
        if square:
            self.pads.rect(cx - r, cy - r, 2 * r, 2 * r, GOLD)
        else:
            self.pads.circle(cx, cy, r, GOLD)
        self.pads.circle(cx, cy, hole, HOLE)

    def smd_pad(self, x: float, y: float, w: float, h: float, color: Color = GOLD) -> None:
        px, py = self.at(x, y)
        self.pads.rect(px - w / 2, py - h / 2, w, h, color)

    def pin_one_mark(self, x: float, y: float) -> None:
        cx, cy = self.at(x, y)
        self.pads.circle(cx, cy, 2.2, SILK)

    def part(self) -> Part:
        return Part(self.body.sprite(), self.pads.sprite())


def _square_pin(pen: Pen, cx: float, cy: float, size: float = 5.5) -> None:
    pen.rect(cx - size / 2, cy - size / 2, size, size, GOLD)
    pen.rect(cx - size / 4, cy - size / 4, size / 2, size / 2, GOLD_HI)


def pin_header(pins: int, color: Color = BLACK, rows: int = 1) -> Part:
    """A straight 2.54 mm pin header, `rows` x `pins`."""
    pitch = 20.32
    s = _Sketch(pins * pitch, rows * pitch + 1)
    s.body.gradient(*s.at(0, 0), s.w, s.h, scaled(color, 1.25), scaled(color, 0.8))
    for i in range(pins):
        for j in range(rows):
            cx, cy = (i + 0.5) * pitch, (j + 0.5) * pitch + 0.5
            s.tht_pad(cx, cy, 6.5, 3.3, square=(i == 0 and j == 0))
            _square_pin(s.body, *s.at(cx, cy))
        if i:
            x, _ = s.at(i * pitch, 0)
            s.body.poly([(x - 2, EDGE), (x + 2, EDGE), (x, EDGE + 3)], scaled(color, 0.5))
            s.body.poly([(x - 2, EDGE + s.h), (x + 2, EDGE + s.h), (x, EDGE + s.h - 3)], HOLE)
    return s.part()


def jst(pins: int, pitch: float, extra: float, depth: float, color: Color) -> Part:
    """A JST-style wire-to-board header (XH, PH): housing, open cavity and pins."""
    s = _Sketch((pins - 1) * pitch + extra, depth)
    wall = depth * 0.16
    s.body.gradient(*s.at(0, 0), s.w, s.h, scaled(color, 1.05), scaled(color, 0.9))
    cx0, cy0 = s.at(wall, wall * 1.4)
    cavity_w, cavity_h = s.w - 2 * wall, s.h - 2.4 * wall
    s.body.gradient(cx0, cy0, cavity_w, cavity_h, scaled(color, 0.55), scaled(color, 0.82))
    first = (s.w - (pins - 1) * pitch) / 2
    for i in range(pins):
        x = first + i * pitch
        s.tht_pad(x, s.h * 0.55, pitch * 0.32, pitch * 0.17, square=(i == 0))
        _square_pin(s.body, *s.at(x, s.h * 0.55), size=pitch * 0.3)
        lx, ly = s.at(x - pitch * 0.2, 0)
        s.body.rect(lx, ly, pitch * 0.4, wall * 0.8, scaled(color, 0.6))
    for x in (wall * 0.5, s.w - wall * 1.5):
        ex, ey = s.at(x, s.h - wall)
        s.body.rect(ex, ey, wall, wall, scaled(color, 0.7))
    s.pin_one_mark(3, s.h - 3)
    return s.part()


def usb_c() -> Part:
    """A mid-mount USB-C receptacle: stamped steel shell, tabs and a row of rear leads."""
    s = _Sketch(88, 70)
    for i in range(12):
        x = 20 + i * 4.2
        s.smd_pad(x, 4, 2.6, 10)
        lx, ly = s.at(x - 1.1, 0)
        s.body.rect(lx, ly, 2.2, 9, GOLD)
    for tx, ty in ((0, 12), (78, 12), (0, 46), (78, 46)):
        s.smd_pad(tx + 5, ty + 6, 11, 13, TIN)
        s.body.rect(*s.at(tx, ty), 10, 12, scaled(TIN, 0.9))
    x, y = s.at(6, 8)
    s.body.rounded(x, y, 76, 62, 6, STEEL_DARK)
    s.body.gradient(x + 2, y + 2, 72, 58, STEEL_HI, STEEL)
    s.body.rect(x + 14, y + 10, 48, 3, STEEL_DARK)
    s.body.rect(x + 14, y + 18, 48, 3, STEEL_DARK)
    s.body.outline(x + 10, y + 28, 56, 22, 2, STEEL_HI)
    s.body.rect(x + 2, y + 54, 72, 6, scaled(STEEL_DARK, 0.7))
    for cx in (x + 20, x + 56):
        s.body.circle(cx, y + 40, 3.5, STEEL_DARK)
    return s.part()


def rj45(metal: bool = True) -> Part:
    """An RJ45 jack: a steel-shielded one with LED windows, or a plain black plastic one."""
    s = _Sketch(124, 160)
    for i in range(8):
        s.tht_pad(26 + i * 10.2, 40 + (i % 2) * 16, 5, 2.6, square=(i == 0))
    for x in (14, 110):
        cx, cy = s.at(x, 100)
        s.pads.circle(cx, cy, 8, HOLE)
        s.tht_pad(x - 6, 140, 8, 4.5)
    x, y = s.at(0, 0)
    if metal:
        s.body.gradient(x, y, 124, 160, STEEL_HI, STEEL_DARK)
        s.body.outline(x, y, 124, 160, 3, STEEL_DARK)
        s.body.outline(x + 6, y + 6, 112, 130, 2, STEEL_HI)
        for ry in range(24, 130, 18):
            s.body.rect(x + 16, y + ry, 92, 2, scaled(STEEL, 0.85))
        for ty in (40, 100):
            s.body.rect(x - 1, y + ty, 6, 16, TIN)
            s.body.rect(x + 119, y + ty, 6, 16, TIN)
        s.body.rect(x + 10, y + 140, 20, 12, (70, 210, 90))
        s.body.rect(x + 94, y + 140, 20, 12, (40, 200, 235))
        s.body.rect(x + 38, y + 142, 48, 14, scaled(STEEL_DARK, 0.6))
    else:
        s.body.gradient(x, y, 124, 160, scaled(BLACK, 1.4), scaled(BLACK, 0.9))
        for ry in range(20, 120, 24):
            s.body.rect(x + 10, y + ry, 104, 4, scaled(BLACK, 0.7))
        s.body.rect(x + 30, y + 132, 64, 22, scaled(BLACK, 0.5))
    return s.part()


def fpc(pins: int, actuator: Color = ACTUATOR_BROWN) -> Part:
    """A 0.5 mm FPC/ZIF connector: fine rear leads, black housing, flip-lock actuator."""
    s = _Sketch(pins * 4 + 28, 44)
    first = 14 + 2
    for i in range(pins):
        x = first + i * 4
        s.smd_pad(x, 4, 2.2, 10)
        lx, ly = s.at(x - 1, 0)
        s.body.rect(lx, ly, 2, 9, GOLD)
    for tx in (0, s.w - 9):
        s.smd_pad(tx + 4.5, 24, 10, 14, TIN)
        s.body.rect(*s.at(tx, 17), 9, 14, TIN)
    s.body.gradient(*s.at(8, 7), s.w - 16, 20, scaled(BLACK, 1.3), BLACK)
    s.body.gradient(*s.at(6, 26), s.w - 12, 18, scaled(actuator, 1.15), scaled(actuator, 0.85))
    rx, ry = s.at(10, 33)
    s.body.rect(rx, ry, s.w - 20, 2, scaled(actuator, 0.65))
    s.pin_one_mark(5, 4)
    return s.part()


def barrel_jack() -> Part:
    """A 5.5 mm DC barrel jack lying on the board: square body and a round front barrel."""
    s = _Sketch(112, 72)
    s.smd_pad(14, 36, 10, 24)
    s.smd_pad(52, 10, 24, 10)
    s.smd_pad(52, 62, 24, 10)
    for cx, cy in ((14, 36), (52, 10), (52, 62)):
        x, y = s.at(cx, cy)
        s.pads.ellipse(x, y, 2.5, 2.5, HOLE)
    x, y = s.at(0, 0)
    s.body.gradient(x, y, 86, 72, scaled(BLACK, 1.5), scaled(BLACK, 0.85))
    for rx in (10, 24, 38, 52, 66):
        s.body.rect(x + rx, y + 6, 3, 60, scaled(BLACK, 1.8))
    steps = 24
    for i in range(steps):
        t = (i + 0.5) / steps
        shade = 0.7 + 1.3 * np.sin(np.pi * t) ** 2
        s.body.rect(x + 82, y + 6 + 60 * i / steps, 30, 60 / steps + 0.3, scaled(BLACK, shade))
    s.body.rect(x + 108, y + 8, 4, 56, scaled(BLACK, 2.2))
    return s.part()


def terminal_block(positions: int, color: Color = TERMINAL_GREEN) -> Part:
    """A 5 mm rising-clamp screw terminal block."""
    pitch = 40
    s = _Sketch(positions * pitch, 64)
    s.body.gradient(*s.at(0, 0), s.w, s.h, scaled(color, 1.2), scaled(color, 0.8))
    for i in range(positions):
        cx = (i + 0.5) * pitch
        s.tht_pad(cx, 32, 8.5, 4.5, square=(i == 0))
        x, y = s.at(cx, 26)
        s.body.circle(x, y, 13, scaled(color, 0.55))
        s.body.circle(x, y, 11, STEEL)
        s.body.circle(x - 2, y - 2, 6, STEEL_HI)
        angle = np.radians(35 + 50 * i)
        dx, dy = 10 * np.cos(angle), 10 * np.sin(angle)
        s.body.line([(x - dx, y - dy), (x + dx, y + dy)], 3, STEEL_DARK)
        s.body.rect(x - 12, y + 27, 24, 10, HOLE)
        s.body.rect(x - 9, y + 28, 18, 3, STEEL)
        if i:
            bx, by = s.at(i * pitch, 0)
            s.body.rect(bx - 1, by, 2, s.h, scaled(color, 0.6))
    return s.part()


def idc_box_header(cols: int = 5) -> Part:
    """A shrouded 2 x `cols` IDC box header with its key notch."""
    pitch = 20.32
    s = _Sketch(cols * pitch + 62, 72)
    first = (s.w - (cols - 1) * pitch) / 2
    x, y = s.at(0, 0)
    s.body.gradient(x, y, s.w, s.h, scaled(BLACK, 1.45), scaled(BLACK, 0.9))
    s.body.rect(x + 9, y + 9, s.w - 18, s.h - 18, (20, 20, 21))
    notch = s.w / 2 - 18
    s.body.rect(x + notch, y + s.h - 10, 36, 10, (26, 26, 27))
    for i in range(cols):
        for j in range(2):
            cx, cy = first + i * pitch, s.h / 2 + (j - 0.5) * pitch
            s.tht_pad(cx, cy, 6.5, 3.3, square=(i == 0 and j == 0))
            _square_pin(s.body, *s.at(cx, cy))
    s.pin_one_mark(4, 4)
    return s.part()


def unshrouded_header(cols: int = 5) -> Part:
    """A bare 2 x `cols` pin header in the box header's place (drawn on its footprint)."""
    box = idc_box_header(cols)
    pitch = 20.32
    w, h = box.size
    pen = Pen(w, h)
    x0, y0 = (w - cols * pitch) / 2, (h - 2 * pitch) / 2
    pen.gradient(x0, y0, cols * pitch, 2 * pitch, scaled(BLACK, 1.3), scaled(BLACK, 0.85))
    for i in range(cols):
        for j in range(2):
            _square_pin(pen, x0 + (i + 0.5) * pitch, y0 + (j + 0.5) * pitch)
    return Part(pen.sprite(), box.footprint)


CATALOGUE: dict[str, Callable[[], Part]] = {
    "pin_header_1x8": lambda: pin_header(8),
    "pin_header_1x6": lambda: pin_header(6),
    "jst_xh_4": lambda: jst(4, 20.0, 39.0, 46.0, IVORY),
    "jst_xh_4_black": lambda: jst(4, 20.0, 39.0, 46.0, BLACK),
    "jst_ph_3": lambda: jst(3, 16.0, 31.0, 36.0, BEIGE),
    "jst_ph_3_red": lambda: jst(3, 16.0, 31.0, 36.0, RED),
    "usb_c": usb_c,
    "rj45_metal": rj45,
    "rj45_black": lambda: rj45(metal=False),
    "fpc_24": lambda: fpc(24),
    "fpc_16": lambda: fpc(16),
    "barrel_jack": barrel_jack,
    "terminal_block_3": lambda: terminal_block(3),
    "idc_2x5": idc_box_header,
    "header_2x5": unshrouded_header,
}


def draw_part(kind: str) -> Part:
    """Draw a connector type of the catalogue."""
    return CATALOGUE[kind]()
