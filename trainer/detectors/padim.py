"""PaDiM (Defard et al., ICPR 2021): a Gaussian per patch position, Mahalanobis distance map.

The patch embedding is PatchCore's (two backbone stages, neighbourhood mean, one grid); a
seeded random subset of `padim_dims` of its channels is modelled at every grid position by a
mean and a regularised covariance (computed in float64; its float32 inverse is stored).
"""

from __future__ import annotations

import structlog
import torch
from torch import nn

from trainer.detectors.components.embedding import PatchEmbedding, embed_all
from trainer.progress import bar
from trainer.settings import TrainingSettings

log = structlog.get_logger()

EPSILON = 0.01
"""Covariance regularisation (the paper's epsilon * I)."""

_POSITIONS_PER_STEP = 16


class PadimCore(nn.Module):
    """Normalised image -> (1, 1, h, w) Mahalanobis distance of each patch to its position's fit."""

    def __init__(
        self,
        embedding: PatchEmbedding,
        channels: torch.Tensor,
        mean: torch.Tensor,
        inv_covariance: torch.Tensor,
    ) -> None:
        super().__init__()
        self.embedding = embedding
        self.register_buffer("channels", channels.to(torch.int64).contiguous())
        self.register_buffer("mean", mean.to(torch.float32).contiguous())  # (h*w, d)
        self.register_buffer("inv_covariance", inv_covariance.to(torch.float32).contiguous())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.embedding(x).index_select(1, self.channels)
        _, dims, height, width = features.shape
        centred = features.reshape(dims, height * width).T - self.mean  # (h*w, d)
        # (z^T S^-1 z) per position: one batched matmul over the grid, then a row-wise dot.
        projected = torch.matmul(centred.unsqueeze(1), self.inv_covariance).squeeze(1)
        squared = (projected * centred).sum(dim=1)
        return squared.clamp_min(0.0).sqrt().view(1, 1, height, width)


def select_channels(total: int, dims: int, seed: int) -> torch.Tensor:
    """A sorted random subset of `dims` of `total` channel indices, fixed by `seed`."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(total, generator=generator)[: min(dims, total)].sort().values


def gaussian_fit(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-position mean (P, d) and float32 inverse of the regularised covariance (P, d, d).

    `features` is (N, P, d); statistics are computed in float64, a few positions at a time.
    """
    count, positions, dims = features.shape
    mean = features.to(torch.float64).mean(dim=0)
    identity = EPSILON * torch.eye(dims, dtype=torch.float64)
    inverse = torch.empty((positions, dims, dims), dtype=torch.float32)
    with bar(positions, "gaussians") as progress:
        for start in range(0, positions, _POSITIONS_PER_STEP):
            stop = min(start + _POSITIONS_PER_STEP, positions)
            centred = features[:, start:stop].to(torch.float64) - mean[start:stop]
            covariance = torch.einsum("npd,npe->pde", centred, centred) / max(count - 1, 1)
            inverse[start:stop] = torch.linalg.inv(covariance + identity).to(torch.float32)
            progress.update(stop - start)
    return mean.to(torch.float32), inverse


def fit(images: torch.Tensor, backbone: nn.Module, settings: TrainingSettings) -> PadimCore:
    """Fit one Gaussian per grid position to normalised OK images (N, 3, S, S)."""
    embedding = PatchEmbedding(backbone, settings.neighbourhood).eval()
    maps = embed_all(embedding, images)
    count, total, height, width = maps.shape
    channels = select_channels(total, settings.padim_dims, settings.seed)
    if len(channels) < settings.padim_dims:
        log.warning("padim dims capped", asked=settings.padim_dims, available=total)
    features = maps.index_select(1, channels).flatten(2).transpose(1, 2)  # (N, h*w, d)
    mean, inverse = gaussian_fit(features)
    log.info(
        "gaussians",
        images=count,
        grid=f"{height}x{width}",
        dim=len(channels),
        of=total,
        inverse_mb=round(inverse.numel() * 4 / 1e6, 1),
    )
    return PadimCore(embedding, channels, mean, inverse)
