"""Which board goes to which split, and which connectors of it are KO and how."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from trainer.synth.defects import KO_KINDS

DEFAULT_BOARDS = 320
MIN_BOARDS = 10
# per DEFAULT_BOARDS boards: split sizes, and KO per KO-capable connector
SPLIT_BOARDS = {"train": 200, "val": 40, "test": 80}
KO_PER_CONNECTOR = {"val": 4, "test": 12}
MIN_KO_PER_CONNECTOR = {"val": 1, "test": 2}


@dataclass(frozen=True)
class BoardPlan:
    """One board to generate: its name, split and KO connectors (id -> KO kind)."""

    index: int
    name: str
    split: str
    defects: dict[str, str] = field(default_factory=dict)


def split_sizes(boards: int) -> dict[str, int]:
    """Board counts per split, in the default proportions."""
    if boards < MIN_BOARDS:
        raise ValueError(f"--boards {boards} is too few: a station needs at least {MIN_BOARDS}")
    val = max(1, round(boards * SPLIT_BOARDS["val"] / DEFAULT_BOARDS))
    test = max(2, round(boards * SPLIT_BOARDS["test"] / DEFAULT_BOARDS))
    return {"train": boards - val - test, "val": val, "test": test}


def _assign(
    rng: np.random.Generator, boards: list[BoardPlan], ko_ids: Sequence[str], per: int, offset: int
) -> None:
    """Give each KO connector `per` KO boards, few KO per board; kinds rotate from `offset`."""
    n = len(boards)
    per = min(n, per)
    cap = max(2, math.ceil(2 * per * len(ko_ids) / n))
    for ci, cid in enumerate(ko_ids):
        loads = np.array([len(b.defects) for b in boards])
        open_ = np.flatnonzero(loads < cap)
        if len(open_) >= per:
            chosen = rng.choice(open_, per, replace=False)
        else:
            chosen = np.argsort(loads + rng.random(n), kind="stable")[:per]
        for i, board in enumerate(sorted(chosen)):
            boards[board].defects[cid] = KO_KINDS[(ci * per + i + offset) % len(KO_KINDS)]


def plan_boards(rng: np.random.Generator, boards: int, ko_ids: Sequence[str]) -> list[BoardPlan]:
    """All boards of a station: train (all OK), then val, then test, with their KO."""
    sizes = split_sizes(boards)
    digits = max(4, len(str(boards - 1)))
    plans: list[BoardPlan] = []
    for split in ("train", "val", "test"):
        first = len(plans)
        plans += [
            BoardPlan(i, f"b{i:0{digits}d}", split) for i in range(first, first + sizes[split])
        ]
        if split in KO_PER_CONNECTOR:
            per = round(KO_PER_CONNECTOR[split] * boards / DEFAULT_BOARDS)
            per = max(MIN_KO_PER_CONNECTOR[split], per)
            _assign(rng, plans[first:], ko_ids, per, offset=2 if split == "val" else 0)
    return plans
