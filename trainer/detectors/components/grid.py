"""The half-size working grid of the trained detectors (autoencoder, EfficientAD)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def shrink(x: torch.Tensor) -> torch.Tensor:
    """The working grid: the model input average-pooled to half size."""
    return F.avg_pool2d(x, 2, ceil_mode=True)
