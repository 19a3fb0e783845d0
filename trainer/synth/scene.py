"""A station's fixed art (board, parts, layout) and the photos taken of its boards."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from trainer.synth.board import Footprint, render_board
from trainer.synth.cables import draw_cable, stray_cable
from trainer.synth.defects import ConnectorView, Placed, good_part, make_defect
from trainer.synth.draw import Sprite, composite
from trainer.synth.layout import FRAME, MARGIN, ConnectorPlace, make_layout
from trainer.synth.parts import draw_part
from trainer.synth.variation import (
    DOMAINS,
    Shot,
    board_tint,
    develop,
    noise_field,
    pose_matrix,
    sample_shot,
)

_PART_SHADOW = 0.35
_STRAY_CABLES = (0, 0, 1, 1, 2)  # how many cables lie near the connectors, drawn uniformly


@dataclass(frozen=True)
class Photo:
    """A board photo, the KO masks (box-sized, 0/255) and the true reference-to-photo affine."""

    image: np.ndarray
    masks: dict[str, np.ndarray]
    truth: np.ndarray


@dataclass(frozen=True)
class Art:
    """One connector's part and the part that is wrong there, turned as placed."""

    body: Sprite
    wrong: Sprite | None


@dataclass(frozen=True)
class Station:
    """Everything fixed about a station: connector places, bare board, parts, sensor noise."""

    places: list[ConnectorPlace]
    board: np.ndarray
    art: dict[str, Art]
    noise: np.ndarray

    @classmethod
    def build(cls, seed: int) -> Station:
        """The station of a seed: the same seed gives the same board, pixel for pixel."""
        rng = np.random.default_rng([seed, 0x5747])
        places = make_layout(rng)
        art, footprints = {}, []
        for place in places:
            part = draw_part(place.kind).turned(place.quarter_turns)
            wrong = None
            if place.wrong_kind:
                wrong = draw_part(place.wrong_kind).body.turned(place.quarter_turns)
            art[place.id] = Art(part.body, wrong)
            footprints.append(Footprint(part.footprint, place.centre, place.id, place.canvas_box))
        size = (FRAME[0] + 2 * MARGIN, FRAME[1] + 2 * MARGIN)
        board = render_board(rng, size, (MARGIN, MARGIN, *FRAME), footprints)
        return cls(places, board, art, noise_field(rng, FRAME))

    @property
    def boxes(self) -> dict[str, tuple[int, int, int, int]]:
        """Connector boxes in reference pixels."""
        return {place.id: place.box for place in self.places}

    def reference(self) -> np.ndarray:
        """A clean, unshifted OK board at nominal pose, evenly lit and noise-free."""
        canvas = self.board.copy()
        for place in self.places:
            composite(canvas, self.art[place.id].body, place.centre, shadow=_PART_SHADOW)
        return self._expose(canvas, Shot())[0]

    def photo(
        self,
        rng: np.random.Generator,
        defects: Mapping[str, str],
        domain: str = "none",
        shot: Shot | None = None,
    ) -> Photo:
        """A photo of one board with the given KO connectors (id -> KO kind).

        The conditions are drawn from `domain` unless `shot` sets them.
        """
        drawn = sample_shot(rng, DOMAINS[domain])  # drawn either way: the rest stays as seeded
        shot = drawn if shot is None else shot
        canvas = cv2.multiply(self.board, (*board_tint(rng), 0.0))
        boxes = [place.canvas_box for place in self.places]
        views: dict[str, ConnectorView] = {}
        for place in self.places:
            art = self.art[place.id]
            if place.id in defects:
                others = [b for b in boxes if b != place.canvas_box]
                wrong = art.wrong if art.wrong is not None else art.body
                views[place.id] = make_defect(
                    defects[place.id], rng, place, art.body, wrong, others
                )
            else:
                views[place.id] = ConnectorView(good_part(rng, art.body, place.centre))
        for view in views.values():
            if view.part is not None:
                _paint(canvas, view.part)
        for _ in range(int(rng.choice(_STRAY_CABLES))):
            cable = stray_cable(rng, boxes)
            if cable is not None:
                draw_cable(canvas, cable)
        for view in views.values():
            for cable in view.cables:
                draw_cable(canvas, cable)
        image, truth = self._expose(canvas, shot)
        masks = {cid: view.mask for cid, view in views.items() if view.mask is not None}
        return Photo(image, masks, truth)

    def _expose(self, canvas: np.ndarray, shot: Shot) -> tuple[np.ndarray, np.ndarray]:
        """The camera's view of the canvas, and the reference-to-photo affine."""
        centre = (MARGIN + (FRAME[0] - 1) / 2, MARGIN + (FRAME[1] - 1) / 2)
        pose = pose_matrix(shot, centre, FRAME)
        frame = cv2.warpAffine(
            canvas, pose, FRAME, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        truth = pose.copy()
        truth[:, 2] += pose[:, :2] @ (MARGIN, MARGIN)
        return develop(frame, shot, self.noise), truth


def _paint(canvas: np.ndarray, part: Placed) -> None:
    composite(canvas, part.sprite, part.centre, part.angle_deg, part.gain, shadow=_PART_SHADOW)
