"""Where a station's connectors sit: types, orientations and boxes on the reference image."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from trainer.synth.parts import draw_part

FRAME = (1280, 960)  # the camera's image, pixels
MARGIN = 128  # board drawn beyond the frame on every side, so a moved board fills it
BOX_MARGIN = 14  # box around a part's footprint: the outline, label and a displaced part show
EDGE_CLEARANCE = 90  # boxes keep this far from the image border
SPACING = 36  # between boxes

# id, part type, what a wrong part there looks like (None: this connector never has KO)
CONNECTORS: tuple[tuple[str, str, str | None], ...] = (
    ("J1", "pin_header_1x8", "pin_header_1x6"),
    ("J2", "jst_xh_4", "jst_xh_4_black"),
    ("J3", "jst_ph_3", "jst_ph_3_red"),
    ("J4", "usb_c", None),
    ("J5", "rj45_metal", "rj45_black"),
    ("J6", "fpc_24", "fpc_16"),
    ("J7", "barrel_jack", None),
    ("J8", "terminal_block_3", None),
    ("J9", "idc_2x5", "header_2x5"),
)


@dataclass(frozen=True)
class ConnectorPlace:
    """One connector of the station: its part, orientation and box in reference pixels."""

    id: str
    kind: str
    wrong_kind: str | None
    quarter_turns: int
    box: tuple[int, int, int, int]

    @property
    def ko_capable(self) -> bool:
        return self.wrong_kind is not None

    @property
    def centre(self) -> tuple[float, float]:
        """The part's nominal centre in canvas pixels (reference pixels + MARGIN)."""
        x, y, w, h = self.box
        return MARGIN + x + (w - 1) / 2, MARGIN + y + (h - 1) / 2

    @property
    def canvas_box(self) -> tuple[int, int, int, int]:
        x, y, w, h = self.box
        return x + MARGIN, y + MARGIN, w, h


def _overlaps(a: tuple[int, int, int, int], b: tuple[int, int, int, int], gap: int) -> bool:
    return not (
        a[0] + a[2] + gap <= b[0]
        or b[0] + b[2] + gap <= a[0]
        or a[1] + a[3] + gap <= b[1]
        or b[1] + b[3] + gap <= a[1]
    )


def make_layout(rng: np.random.Generator) -> list[ConnectorPlace]:
    """Place the nine connectors at random, apart from each other and from the border."""
    width, height = FRAME
    sizes = {kind: draw_part(kind).size for _, kind, _ in CONNECTORS}
    for _ in range(100):
        places: list[ConnectorPlace] = []
        order = rng.permutation(len(CONNECTORS))
        for index in order:
            cid, kind, wrong = CONNECTORS[index]
            turns = int(rng.integers(4))
            w, h = sizes[kind] if turns % 2 == 0 else sizes[kind][::-1]
            w, h = w + 2 * BOX_MARGIN, h + 2 * BOX_MARGIN
            for _ in range(400):
                x = int(rng.integers(EDGE_CLEARANCE, width - EDGE_CLEARANCE - w))
                y = int(rng.integers(EDGE_CLEARANCE, height - EDGE_CLEARANCE - h))
                if not any(_overlaps((x, y, w, h), p.box, SPACING) for p in places):
                    places.append(ConnectorPlace(cid, kind, wrong, turns, (x, y, w, h)))
                    break
            else:
                break
        if len(places) == len(CONNECTORS):
            return sorted(places, key=lambda p: p.id)
    raise RuntimeError("could not place the connectors without overlap")
