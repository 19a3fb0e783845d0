"""The patch embedding that PatchCore, PaDiM and EfficientAD (its teacher) share."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from trainer.progress import track


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


def embed_all(embedding: PatchEmbedding, images: torch.Tensor) -> torch.Tensor:
    """Patch embeddings (N, C, h, w) of normalised images (N, 3, S, S), batch by batch."""
    batches = list(torch.split(images, 16))
    with torch.inference_mode():
        return torch.cat([embedding(batch) for batch in track(batches, len(batches), "features")])
