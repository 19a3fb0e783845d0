"""The exported graph: raw uint8 BGR crop in, ROI-weighted anomaly map and score out.

Every detector plugs a `core` (normalised image -> patch score map) between the shared
pre-processing and post-processing, so training, evaluation and the agent see the same maths.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

_GRAY_WEIGHTS = (0.114, 0.587, 0.299)  # B, G, R (ITU-R BT.601)


class Preprocess(nn.Module):
    """(1, H, W, 3) uint8 BGR -> (1, 3, S, S) float, colour mode and normalisation applied."""

    def __init__(self, size: int, color_mode: str, mean: tuple, std: tuple) -> None:
        super().__init__()
        self.size = size
        self.gray = color_mode == "gray"
        mean_t = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        std_t = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        # (x / 255 - mean) / std as one multiply-add, applied after the resize (which is
        # linear), so the full-size crop is only cast and resized.
        self.register_buffer("scale", 1.0 / (255.0 * std_t))
        self.register_buffer("offset", -mean_t / std_t)
        self.register_buffer("gray_weights", torch.tensor(_GRAY_WEIGHTS).view(1, 3, 1, 1))

    def forward(self, crop: torch.Tensor) -> torch.Tensor:
        x = crop.permute(0, 3, 1, 2).to(torch.float32)
        x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False)
        if self.gray:
            x = (x * self.gray_weights).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)
        else:
            x = x.flip(1)  # BGR -> RGB, the order the backbones were trained with
        return x * self.scale + self.offset


def gaussian_kernel(sigma: float) -> torch.Tensor:
    radius = max(1, math.ceil(3 * sigma))
    steps = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-(steps**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    return kernel


class Postprocess(nn.Module):
    """Patch map -> full-size smoothed map, weighted by the ROI mask; score = max of that map."""

    def __init__(self, size: int, weight_mask: torch.Tensor) -> None:
        super().__init__()
        self.size = size
        kernel = gaussian_kernel(4.0 * size / 224.0)
        self.radius = (kernel.numel() - 1) // 2
        self.register_buffer("kernel_h", kernel.view(1, 1, 1, -1))
        self.register_buffer("kernel_v", kernel.view(1, 1, -1, 1))
        self.register_buffer("weight_mask", weight_mask.to(torch.float32).view(1, 1, size, size))

    def forward(self, patch_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = F.interpolate(
            patch_map, size=(self.size, self.size), mode="bilinear", align_corners=False
        )
        r = self.radius
        x = F.conv2d(F.pad(x, (r, r, 0, 0), mode="replicate"), self.kernel_h)
        x = F.conv2d(F.pad(x, (0, 0, r, r), mode="replicate"), self.kernel_v)
        weighted = x * self.weight_mask
        return weighted[:, 0], weighted.amax(dim=(1, 2, 3))


class AnomalyGraph(nn.Module):
    """Preprocess -> detector core -> postprocess: exactly what model.onnx computes."""

    def __init__(self, preprocess: Preprocess, core: nn.Module, postprocess: Postprocess) -> None:
        super().__init__()
        self.preprocess, self.core, self.postprocess = preprocess, core, postprocess

    def forward(self, crop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.postprocess(self.core(self.preprocess(crop)))
