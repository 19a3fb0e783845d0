"""Greedy k-center coreset (PatchCore, Roth et al. 2022) on randomly projected features."""

from __future__ import annotations

from collections.abc import Callable

import torch


def greedy_coreset(
    features: torch.Tensor,
    count: int,
    projection_dim: int = 128,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> torch.Tensor:
    """Indices of `count` rows that greedily minimise the largest distance to the selection."""
    total = features.shape[0]
    if count >= total:
        return torch.arange(total)
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
    for step in range(1, count):
        index = int(torch.argmax(nearest))
        selected[step] = index
        nearest = torch.minimum(nearest, _squared_distances(points, norms, index))
        if progress is not None and step % 256 == 0:
            progress(256)
    return selected


def _squared_distances(points: torch.Tensor, norms: torch.Tensor, index: int) -> torch.Tensor:
    return (norms - 2 * points @ points[index] + norms[index]).clamp_min_(0)
