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

CROSS_FITTED = frozenset({"patchcore"})
"""Detectors fitted twice more when a connector has no KO, for out-of-fold OK scores that widen
the OK-only calibration: PatchCore, fitted in seconds, whose half-size memory banks score new
OK crops as the full bank does. PaDiM fits in seconds too, but a half-size fit estimates each
position's covariance from half the images and scores new OK crops about twice as high as the
full model (measured on the elpv mono cells: median 37.8 against 19.5), which would set the
threshold far above the OK tail. The trained detectors (minutes per fit) are not cross-fitted
either; these set an OK-only threshold from the held-out OK alone."""
