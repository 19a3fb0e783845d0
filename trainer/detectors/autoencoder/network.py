"""A light U-Net-style autoencoder trained on OK crops; reconstruction + feature error map.

Network: the input is first average-pooled to half size (the working grid, which keeps
training within minutes on two CPU cores); then three stride-2 downsampling levels (16, 32,
64 channels, a 64-channel bottleneck at 1/8 of the working grid) and three upsampling levels.
Skip connections are kept narrow (8 channels from the 1/4 level, 4 from the 1/2 level, each
squeezed by a 1x1 convolution) and the top-level skip is dropped: the decoder gets enough
layout to place edges, but not a copy of the input, so an unseen defect tends to be
reconstructed as the OK appearance it replaces.

Training loss, against the half-size input: MSE + (1 - SSIM) + Sobel-gradient L1 + the L2
distance between the frozen backbone's (fine, coarse) features of input and reconstruction
(computed on the working grid; each stage's distance divided by the mean squared feature of
the training images, so the terms are of one order). Adam; early stopping on the loss of a
seeded held-out split of the training images (`ae_patience` epochs without a better loss),
with the best state restored.

Score map (the working grid, half the input size; the graph upsamples it): the mean of three
error maps, each divided by its typical OK peak (the mean over the held-out split of each
image's maximum), so that none dominates and an OK crop scores about 1: per-pixel
|x - r| and 1 - SSIM (both averaged over channels), and the backbone feature distance
upsampled from its stride-8 grid.
"""

from __future__ import annotations

import math

import structlog
import torch
import torch.nn.functional as F
from torch import nn

from trainer.detectors.components.grid import shrink
from trainer.graph import gaussian_kernel

log = structlog.get_logger()

SSIM_SIGMA = 1.5
_SOBEL_X = ((-1.0, 0.0, 1.0), (-2.0, 0.0, 2.0), (-1.0, 0.0, 1.0))
EVAL_BATCH = 32


def _block(inputs: int, outputs: int, stride: int = 1, convs: int = 2) -> nn.Sequential:
    """3x3 convolutions with batch norm and ReLU; the first one may downsample."""
    layers: list[nn.Module] = []
    for index in range(convs):
        layers += [
            nn.Conv2d(
                inputs if index == 0 else outputs,
                outputs,
                3,
                stride if index == 0 else 1,
                1,
                bias=False,
            ),
            nn.BatchNorm2d(outputs),
            nn.ReLU(inplace=True),
        ]
    return nn.Sequential(*layers)


class UNetAutoencoder(nn.Module):
    """(N, 3, S, S) -> (N, 3, S, S) reconstruction; narrow skips at 1/4 and 1/2, none at 1/1."""

    def __init__(
        self, channels: tuple[int, int, int] = (16, 32, 64), skips: tuple[int, int] = (8, 4)
    ) -> None:
        super().__init__()
        c1, c2, c3 = channels
        self.enc0 = _block(3, c1, convs=1)  # S (working grid), one conv: the costliest level
        self.enc1 = _block(c1, c2, stride=2)  # S/2
        self.enc2 = _block(c2, c3, stride=2)  # S/4
        self.bottleneck = _block(c3, c3, stride=2)  # S/8
        self.skip2 = nn.Conv2d(c3, skips[0], 1)
        self.skip1 = nn.Conv2d(c2, skips[1], 1)
        self.dec2 = _block(c3 + skips[0], c3)  # S/4
        self.dec1 = _block(c3 + skips[1], c2)  # S/2
        self.dec0 = _block(c2, c1, convs=1)  # S, no skip
        self.out = nn.Conv2d(c1, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        e1 = self.enc1(self.enc0(x))
        e2 = self.enc2(e1)
        y = self.bottleneck(e2)
        y = self.dec2(torch.cat([_up(y, e2), self.skip2(e2)], dim=1))
        y = self.dec1(torch.cat([_up(y, e1), self.skip1(e1)], dim=1))
        return self.out(self.dec0(_up(y, x)))


def _up(x: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, size=like.shape[-2:], mode="bilinear", align_corners=False)


class ReconstructionLoss(nn.Module):
    """SSIM, Sobel gradients and backbone feature distances between an image and its copy."""

    def __init__(self, backbone: nn.Module, data_range: float, input_size: int) -> None:
        super().__init__()
        self.backbone = backbone
        # The backbone sees the working grid (half the input) rounded to a multiple of 16:
        # a quarter of the cost of full size, which dominates training time.
        self.feature_size = max(32, 16 * round(input_size / 32))
        kernel = gaussian_kernel(SSIM_SIGMA)
        window = torch.outer(kernel, kernel).expand(3, 1, -1, -1).contiguous()
        sobel_x = torch.tensor(_SOBEL_X) / 8.0
        sobel = torch.stack([sobel_x, sobel_x.T]).unsqueeze(1).repeat(3, 1, 1, 1)
        self.register_buffer("window", window)
        self.register_buffer("sobel", sobel)  # (6, 1, 3, 3): x and y per channel
        self.c1 = (0.01 * data_range) ** 2
        self.c2 = (0.03 * data_range) ** 2
        self.feature_norms = (1.0, 1.0)  # mean squared (fine, coarse) feature of the OK images

    def ssim_map(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Per-pixel, per-channel SSIM with a gaussian window (Wang et al. 2004)."""
        r = (self.window.shape[-1] - 1) // 2

        def blur(t: torch.Tensor) -> torch.Tensor:
            return F.conv2d(F.pad(t, (r, r, r, r), mode="replicate"), self.window, groups=3)

        mu_a, mu_b = blur(a), blur(b)
        var_a = blur(a * a) - mu_a * mu_a
        var_b = blur(b * b) - mu_b * mu_b
        cov = blur(a * b) - mu_a * mu_b
        numerator = (2 * mu_a * mu_b + self.c1) * (2 * cov + self.c2)
        return numerator / ((mu_a * mu_a + mu_b * mu_b + self.c1) * (var_a + var_b + self.c2))

    def gradients(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), self.sobel, groups=3)

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Backbone (fine, coarse) maps of a working-grid image."""
        if x.shape[-1] != self.feature_size or x.shape[-2] != self.feature_size:
            x = _resize(x, self.feature_size)
        fine, coarse = self.backbone(x)
        return fine, coarse

    def forward(
        self,
        x: torch.Tensor,
        recon: torch.Tensor,
        target: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The training loss (a scalar); `target` is the input's features when precomputed."""
        fine, coarse = target if target is not None else self.features(x)
        got_fine, got_coarse = self.features(recon)
        return (
            F.mse_loss(recon, x)
            + (1.0 - self.ssim_map(x, recon).mean())
            + F.l1_loss(self.gradients(recon), self.gradients(x))
            + F.mse_loss(got_fine, fine) / self.feature_norms[0]
            + F.mse_loss(got_coarse, coarse) / self.feature_norms[1]
        )

    def error_maps(
        self, x: torch.Tensor, recon: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(N, 1, s, s) maps: |x - r|, 1 - SSIM, backbone feature distance (upsampled)."""
        pixel = (x - recon).abs().mean(dim=1, keepdim=True)
        structure = (1.0 - self.ssim_map(x, recon)).mean(dim=1, keepdim=True)
        count = x.shape[0]
        fine, coarse = self.features(torch.cat([x, recon]))
        fine_error = (fine[:count] - fine[count:]).pow(2).mean(dim=1, keepdim=True)
        coarse_error = (coarse[:count] - coarse[count:]).pow(2).mean(dim=1, keepdim=True)
        feature = fine_error + _up(coarse_error, fine_error)
        return pixel, structure, _up(feature, x)


class AutoencoderCore(nn.Module):
    """Normalised image (1, 3, S, S) -> (1, 1, S/2, S/2) mean of the three scaled error maps.

    `history` (one dict per epoch: epoch, train_loss, val_loss), `best_epoch`, `best_val_loss`
    and `holdout_indices` describe the training run; they are plain attributes, not exported.
    """

    def __init__(self, autoencoder: UNetAutoencoder, loss: ReconstructionLoss) -> None:
        super().__init__()
        self.autoencoder = autoencoder
        self.loss = loss
        self.register_buffer("scales", torch.ones(3))
        self.history: list[dict[str, float]] = []
        self.best_epoch = 0
        self.best_val_loss = math.inf
        self.holdout_indices: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = shrink(x)
        maps = self.loss.error_maps(x, self.autoencoder(x))
        return sum(m / s for m, s in zip(maps, self.scales, strict=True)) / len(maps)

    def evaluate_loss(self, images: torch.Tensor) -> float:
        """Mean training loss of `images` in eval mode (the early-stopping criterion)."""
        self.eval()
        total = 0.0
        with torch.inference_mode():
            for batch in torch.split(shrink(images), EVAL_BATCH):
                total += float(self.loss(batch, self.autoencoder(batch))) * len(batch)
        return total / len(images)


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
