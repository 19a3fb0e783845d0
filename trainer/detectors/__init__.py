"""Detectors: each builds a graph core (normalised image -> patch score map) from OK images."""

from collections.abc import Callable

import torch
from torch import nn

from trainer.detectors import autoencoder, efficientad, padim, patchcore
from trainer.settings import TrainingSettings

FitFunction = Callable[[torch.Tensor, nn.Module, TrainingSettings], nn.Module]

DETECTORS: dict[str, FitFunction] = {
    "patchcore": patchcore.fit,
    "padim": padim.fit,
    "autoencoder": autoencoder.fit,
    "efficientad-s": efficientad.fit_small,
    "efficientad-m": efficientad.fit_medium,
}

CROSS_FITTED = frozenset({"patchcore", "padim"})
"""Detectors fitted in one pass over the features, in seconds: cheap enough to fit twice more
when a connector has no KO, for out-of-fold OK scores that widen the OK-only calibration. The
trained ones (minutes per fit) set an OK-only threshold from the held-out OK alone."""
