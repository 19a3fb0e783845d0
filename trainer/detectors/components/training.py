"""Helpers shared by the trained detectors: the seeded held-out split and early stopping."""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

HOLDOUT_FRACTION = 0.12
"""Share of the training images held out (seeded) for early stopping and the map scales."""


def split_holdout(count: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded (train, held-out) index split; ~12 % held out, at least one image each side."""
    if count < 2:
        raise ValueError(f"a trained detector needs at least 2 training images, got {count}")
    held = min(count - 1, max(1, round(HOLDOUT_FRACTION * count)))
    order = torch.randperm(count, generator=torch.Generator().manual_seed(seed))
    return order[held:].sort().values, order[:held].sort().values


class EarlyStopping:
    """Keeps the state of `module` at its best held-out loss; `update` says when to stop."""

    def __init__(self, module: nn.Module, patience: int) -> None:
        self.module = module
        self.patience = patience
        self.best_loss = math.inf
        self.best_round = 0
        self.stale = 0
        self.best_state = copy.deepcopy(module.state_dict())

    def update(self, loss: float, round_: int) -> bool:
        """Record the held-out loss of evaluation `round_`; True once `patience` rounds stale."""
        if loss < self.best_loss:
            self.best_loss, self.best_round, self.stale = loss, round_, 0
            self.best_state = copy.deepcopy(self.module.state_dict())
            return False
        self.stale += 1
        return self.stale >= self.patience

    def restore(self) -> None:
        """Load the best state back into the module."""
        self.module.load_state_dict(self.best_state)
