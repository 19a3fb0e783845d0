"""Detectors: each builds a graph core (normalised image -> patch score map) from OK images."""

from collections.abc import Callable

import torch
from torch import nn

from edge_agent.config import TrainingSettings
from trainer.detectors import autoencoder, efficientad, padim, patchcore

FitFunction = Callable[[torch.Tensor, nn.Module, TrainingSettings], nn.Module]

DETECTORS: dict[str, FitFunction] = {
    "patchcore": patchcore.fit,
    "padim": padim.fit,
    "autoencoder": autoencoder.fit,
    "efficientad-s": efficientad.fit_small,
    "efficientad-m": efficientad.fit_medium,
}
