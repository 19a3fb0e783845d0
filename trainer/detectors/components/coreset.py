"""Greedy k-center coreset (PatchCore, Roth et al. 2022) on randomly projected features.

Each pick is the row farthest from the selection so far, so the distance it had is the
selection's coverage radius at that size. With `radius_share` the selection stops growing once
that radius is at most `radius_share` times the radius after `REFERENCE_PICKS` picks (the scale
of the rows' spread): rows that vary little are covered to that resolution by a few hundred
picks, rows that vary much (a texture) need many more.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

REFERENCE_PICKS = 50  # the coverage radius after this many picks is the spread's scale


def greedy_coreset(
    features: torch.Tensor,
    count: int,
    projection_dim: int = 128,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
    radius_share: float | None = None,
) -> torch.Tensor:
    """Indices of at most `count` rows that greedily minimise the largest distance to the
    selection; fewer once the coverage radius reached `radius_share` of its scale (above)."""
    total = features.shape[0]
    if count >= total and radius_share is None:
        return torch.arange(total)
    count = min(count, total)
    generator = torch.Generator().manual_seed(seed)
    points = features
    if features.shape[1] > projection_dim:
        # Johnson-Lindenstrauss: distances survive a random Gaussian projection.
        projection = torch.randn(features.shape[1], projection_dim, generator=generator)
        points = features @ (projection / projection_dim**0.5)
    norms = (points * points).sum(dim=1)
    start = int(torch.randint(total, (1,), generator=generator))
    selected = torch.empty(count, dtype=torch.long)
    selected[0] = start
    nearest = _squared_distances(points, norms, start)
    scale = None
    for step in range(1, count):
        index = int(torch.argmax(nearest))
        if radius_share is not None:
            radius = float(nearest[index]) ** 0.5  # the selection's coverage radius now
            if step == REFERENCE_PICKS:
                scale = radius
            elif scale is not None and radius <= radius_share * scale:
                return selected[:step]
        selected[step] = index
        nearest = torch.minimum(nearest, _squared_distances(points, norms, index))
        if progress is not None and step % 256 == 0:
            progress(256)
    return selected


def _squared_distances(points: torch.Tensor, norms: torch.Tensor, index: int) -> torch.Tensor:
    return (norms - 2 * points @ points[index] + norms[index]).clamp_min_(0)
