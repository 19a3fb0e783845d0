"""PatchCore (Roth et al., CVPR 2022): memory bank of nominal patch features, kNN distance map."""

from __future__ import annotations

import math

import structlog
import torch
from torch import nn

from trainer.detectors.components.coreset import REFERENCE_PICKS, greedy_coreset
from trainer.detectors.components.embedding import PatchEmbedding, embed_all
from trainer.progress import bar
from trainer.settings import TrainingSettings

log = structlog.get_logger()


class PatchCoreCore(nn.Module):
    """Normalised image -> (1, 1, h, w) distance of each patch to its nearest bank entry."""

    def __init__(self, embedding: PatchEmbedding, bank: torch.Tensor, reason: str = "") -> None:
        super().__init__()
        self.embedding = embedding
        self.reason = reason  # the bank's size and why (the training report says it)
        # |q - b|^2 = |q|^2 + (|b|^2 - 2 q.b): the bracket is one Gemm whose bias is |b|^2, and
        # |q|^2 is the same for every b of a row, so it is added after the row's minimum.
        self.register_buffer("bank_t_scaled", (-2.0 * bank).T.contiguous())
        self.register_buffer("bank_norms", (bank * bank).sum(dim=1).unsqueeze(0))

    @property
    def bank(self) -> torch.Tensor:
        """The memory bank (N, C), recovered exactly from its scaled transpose."""
        return self.bank_t_scaled.T / -2.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.embedding(x)
        _, channels, height, width = features.shape
        queries = features.permute(0, 2, 3, 1).reshape(height * width, channels)
        partial = torch.addmm(self.bank_norms, queries, self.bank_t_scaled)
        squared = partial.amin(dim=1) + (queries * queries).sum(dim=1)
        nearest = squared.clamp_min(0.0).sqrt()
        return nearest.view(1, 1, height, width)


def fit(images: torch.Tensor, backbone: nn.Module, settings: TrainingSettings) -> PatchCoreCore:
    """Build the memory bank from normalised OK images (N, 3, S, S)."""
    embedding = PatchEmbedding(backbone, settings.neighbourhood).eval()
    maps = embed_all(embedding, images)
    features = maps.permute(0, 2, 3, 1).reshape(-1, maps.shape[1])
    most = min(settings.coreset_max, max(1, math.ceil(settings.coreset_ratio * len(features))))
    share = settings.coreset_radius_share
    with bar(most, "coreset") as progress:
        indices = greedy_coreset(
            features, most, settings.projection_dim, settings.seed, progress.update, share
        )
    count = len(indices)
    reason = (
        f"memory bank {count} of {len(features)} patches: every patch within {share:g} of their "
        f"spread (the coverage radius of the first {REFERENCE_PICKS})"
        if count < most
        else f"memory bank {count} of {len(features)} patches: at most {most} (coreset_max, "
        f"coreset_ratio), patches still farther than {share:g} of their spread"
    )
    log.info("memory bank", patches=len(features), bank=count, dim=features.shape[1], why=reason)
    return PatchCoreCore(embedding, features[indices].clone(), reason)
