"""PatchCore (Roth et al., CVPR 2022): memory bank of nominal patch features, kNN distance map."""

from __future__ import annotations

import math

import structlog
import torch
import torch.nn.functional as F
from torch import nn

from trainer.detectors.components.coreset import greedy_coreset
from trainer.progress import bar, track
from trainer.settings import TrainingSettings

log = structlog.get_logger()


class PatchEmbedding(nn.Module):
    """Two mid-level feature maps, each averaged over a local neighbourhood, on one grid."""

    def __init__(self, backbone: nn.Module, neighbourhood: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.pool = nn.AvgPool2d(neighbourhood, stride=1, padding=neighbourhood // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        fine, coarse = self.backbone(x)
        fine, coarse = self.pool(fine), self.pool(coarse)
        coarse = F.interpolate(coarse, size=fine.shape[-2:], mode="bilinear", align_corners=False)
        return torch.cat([fine, coarse], dim=1)


class PatchCoreCore(nn.Module):
    """Normalised image -> (1, 1, h, w) distance of each patch to its nearest bank entry."""

    def __init__(self, embedding: PatchEmbedding, bank: torch.Tensor) -> None:
        super().__init__()
        self.embedding = embedding
        self.register_buffer("bank", bank.contiguous())
        self.register_buffer("bank_norms", (bank * bank).sum(dim=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.embedding(x)
        _, channels, height, width = features.shape
        queries = features.permute(0, 2, 3, 1).reshape(height * width, channels)
        # |q - b|^2 = |q|^2 - 2 q.b + |b|^2: one matmul against the whole bank.
        squared = (
            (queries * queries).sum(dim=1, keepdim=True)
            - 2.0 * queries @ self.bank.T
            + self.bank_norms.unsqueeze(0)
        )
        nearest = squared.amin(dim=1).clamp_min(0.0).sqrt()
        return nearest.view(1, 1, height, width)


def embed_all(embedding: PatchEmbedding, images: torch.Tensor) -> torch.Tensor:
    """Patch embeddings (N, C, h, w) of normalised images (N, 3, S, S), batch by batch."""
    batches = list(torch.split(images, 16))
    with torch.inference_mode():
        return torch.cat([embedding(batch) for batch in track(batches, len(batches), "features")])


def fit(images: torch.Tensor, backbone: nn.Module, settings: TrainingSettings) -> PatchCoreCore:
    """Build the memory bank from normalised OK images (N, 3, S, S)."""
    embedding = PatchEmbedding(backbone, settings.neighbourhood).eval()
    maps = embed_all(embedding, images)
    features = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])
    count = min(settings.coreset_max, max(1, math.ceil(settings.coreset_ratio * len(features))))
    with bar(count, "coreset") as progress:
        indices = greedy_coreset(
            features, count, settings.projection_dim, settings.seed, progress.update
        )
    log.info("memory bank", patches=len(features), bank=count, dim=features.shape[1])
    return PatchCoreCore(embedding, features[indices].clone())
