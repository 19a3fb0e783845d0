"""The KO kinds: what each does to a connector, with its ground-truth mask in the crop frame."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from trainer.synth.cables import Cable, coverage, curve, overlaps, random_colors
from trainer.synth.draw import Color, Sprite, coverage_in_box
from trainer.synth.layout import ConnectorPlace
from trainer.synth.variation import part_gain, part_tolerance

KO_KINDS = ("missing", "occluded", "partial_occlusion", "displaced", "wrong_part")
_TRIES = 40


@dataclass(frozen=True)
class Placed:
    """A part as placed on this board."""

    sprite: Sprite
    centre: tuple[float, float]
    angle_deg: float = 0.0
    gain: Color = (1.0, 1.0, 1.0)

    def coverage(self, box: tuple[int, int, int, int]) -> np.ndarray:
        return coverage_in_box(self.sprite, self.centre, self.angle_deg, box)


@dataclass(frozen=True)
class ConnectorView:
    """What one photo shows at a connector; `mask` (0/255, box-sized) only for a KO."""

    part: Placed | None
    cables: tuple[Cable, ...] = ()
    mask: np.ndarray | None = None


def good_part(rng: np.random.Generator, sprite: Sprite, centre: tuple[float, float]) -> Placed:
    """A part within placement tolerance, with its own small colour difference."""
    dx, dy, angle = part_tolerance(rng)
    return Placed(sprite, (centre[0] + dx, centre[1] + dy), angle, part_gain(rng))


def _as_mask(covered: np.ndarray) -> np.ndarray:
    return np.where(covered, 255, 0).astype(np.uint8)


def _displaced(rng: np.random.Generator, sprite: Sprite, centre: tuple[float, float]) -> Placed:
    """Shifted (7-13 px), turned (8-16°), or both (6-10 px and 8-12°)."""
    mode = int(rng.integers(3))
    shift = (rng.uniform(7, 13), rng.uniform(0, 1.5), rng.uniform(6, 10))[mode]
    turn = (rng.normal(0, 0.4), rng.uniform(8, 16), rng.uniform(8, 12))[mode]
    direction = rng.uniform(0, 2 * math.pi)
    sign = 1 if mode == 0 else rng.choice([-1, 1])
    moved = (centre[0] + shift * math.cos(direction), centre[1] + shift * math.sin(direction))
    return Placed(sprite, moved, float(sign * turn), part_gain(rng))


def _occluding_cable(
    rng: np.random.Generator,
    kind: str,
    place: ConnectorPlace,
    body: np.ndarray,
    others: list[tuple[int, int, int, int]],
) -> Cable:
    """A cable over most of the part (occluded) or over a part of it (partial_occlusion)."""
    box = place.canvas_box
    centre = np.array(place.centre)
    w, h = box[2], box[3]
    along = 0.0 if w >= h else 90.0
    for attempt in range(_TRIES):
        reach = max(w, h) / 2 + rng.uniform(40, 200) * (1 - attempt / _TRIES) + 8
        wire = rng.uniform(7, 10)
        bare_end = False
        if kind == "occluded":
            angle = math.radians(along + rng.uniform(-15, 15))
            count = math.ceil((min(w, h) - 24) * rng.uniform(0.9, 1.15) / wire)
            through = centre + rng.normal(0, 2, 2)
        else:
            angle = rng.uniform(0, math.pi)
            count = int(rng.integers(1, 3))
            if rng.random() < 0.5:
                normal = np.array([-math.sin(angle), math.cos(angle)])
                extent = abs(normal[0]) * (w - 28) + abs(normal[1]) * (h - 28)
                through = centre + normal * rng.choice([-1, 1]) * rng.uniform(0.22, 0.4) * extent
            else:
                bare_end = True
                through = centre + rng.uniform(-0.3, 0.3, 2) * (w - 28, h - 28)
        direction = np.array([math.cos(angle), math.sin(angle)])
        start = through - direction * reach
        end = through + direction * (0 if bare_end else reach)
        if bare_end:
            start = through - direction * 2 * reach
        cable = Cable(
            curve(start, end, rng.uniform(-20, 20)), random_colors(rng, count), wire, bare_end
        )
        if any(overlaps(cable, other, margin=4) for other in others):
            continue
        covered = (coverage(cable, box) & body).sum() / body.sum()
        if (kind == "occluded" and covered >= 0.6) or (
            kind != "occluded" and 0.08 <= covered <= 0.55
        ):
            return cable
    raise RuntimeError(f"{place.id}: no {kind} cable fits after {_TRIES} tries")


def make_defect(
    kind: str,
    rng: np.random.Generator,
    place: ConnectorPlace,
    body: Sprite,
    wrong: Sprite,
    others: list[tuple[int, int, int, int]],
) -> ConnectorView:
    """The connector as a KO of `kind` shows it; `others` are the other boxes (canvas)."""
    box = place.canvas_box
    nominal = Placed(body, place.centre).coverage(box)
    if kind == "missing":
        return ConnectorView(None, (), _as_mask(nominal))
    if kind == "displaced":
        part = _displaced(rng, body, place.centre)
        return ConnectorView(part, (), _as_mask(nominal | part.coverage(box)))
    if kind == "wrong_part":
        part = good_part(rng, wrong, place.centre)
        return ConnectorView(part, (), _as_mask(nominal | part.coverage(box)))
    if kind in ("occluded", "partial_occlusion"):
        part = good_part(rng, body, place.centre)
        cable = _occluding_cable(rng, kind, place, nominal, others)
        return ConnectorView(part, (cable,), _as_mask(coverage(cable, box)))
    raise ValueError(f"unknown KO kind {kind!r}; expected one of {', '.join(KO_KINDS)}")
