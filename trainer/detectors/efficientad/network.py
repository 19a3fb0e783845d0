"""EfficientAD (Batzner et al., WACV 2024): student-teacher + autoencoder, offline variant.

Teacher. The paper's teacher is a PDN distilled from WideResNet-101 ImageNet features; that
distillation needs ImageNet and hours of training, neither available offline on the line PC.
Here the teacher is the frozen pretrained backbone's patch embedding (`PatchEmbedding`, as
PatchCore uses it: for EfficientNet-Lite0, the stride-8 block plus the upsampled stride-16
block = 40 + 112 = 152 channels on the stride-8 grid), normalised per channel with the mean
and standard deviation of the training images' features (as the paper normalises its
teacher's outputs). Cost of that choice: the teacher runs inside the exported graph, so every
crop pays a backbone forward pass plus the student and autoencoder (the paper's PDN teacher is
a few convolutions), and the teacher's quality is that of generic ImageNet mid-level features
rather than a distilled WideResNet's.

Student. The paper's PDN-S (conv 4x4 128, avg-pool, conv 4x4 256, avg-pool, conv 3x3 256,
conv 4x4) or PDN-M (conv 4x4 256, avg-pool, conv 4x4 512, avg-pool, conv 1x1 512, conv 3x3
512, conv 4x4, conv 1x1), with the paper's paddings, applied to the input average-pooled to
half size: its stride 4 then lands on the teacher's stride-8 grid (exactly, for input sizes
divisible by 16; otherwise the output is resized bilinearly). It has 2 x 152 output channels:
the first half mimics the teacher, the second half the autoencoder.

Autoencoder. The paper's: six strided 4x4 convolutions down to a 1x1, 64-channel code (the
last kernel adapted to the input size), then bilinear upsampling + 4x4 convolution stages
(with dropout 0.2) to twice the teacher grid, a resize to the grid and two 3x3 convolutions to
152 channels; it predicts the teacher's features from the half-size image.

Training (paper, Algorithm 1, minus what needs ImageNet): hard feature loss between teacher
and student (the mean of the squared differences at or above their 0.999 quantile in the
batch), + MSE between autoencoder and teacher, + MSE between the student's second half and the
autoencoder. The ImageNet penalty on the student and the autoencoder's colour augmentation are
not used (no ImageNet offline; the augmentation would need a teacher pass per step). Adam
(weight decay 1e-5), at most `ead_steps` steps of `ead_batch` images; every `ead_eval_every`
steps the same loss is measured on a seeded held-out split of the training images; training
stops after `ead_patience` evaluations without a better one and the best state is restored.
With the defaults (at most 300 steps of 4 images, evaluated every 25, patience 4), J1 of the
seed-0 synthetic station (200 crops, input 128) trains in ~72 s (S, 3.0 M parameters) or ~200 s
(M, 8.0 M) on two idle cores; the held-out loss is still falling slowly at step 300, but the
KO/OK score gap is as wide as after 700 steps (docs/BENCHMARKS.md), and 300 steps keep a whole
station's comparison of all detectors inside 90 minutes. int8 student and autoencoder: ~11 ms
(S) and ~27 ms (M) per crop in onnxruntime on one thread, teacher included.

Score map (stride-8 grid): local = mean over channels of (teacher - student)^2, global = mean
of (autoencoder - student's second half)^2; each is normalised as in the paper with its 0.9
and 0.995 quantiles over the held-out maps sent to 0 and 0.1; the map is 0.5 local + 0.5
global, clamped at 0 (the graph multiplies it by the ROI weights, which must not raise a
negative value). The teacher statistics and the quantiles are buffers of the exported core.
"""

from __future__ import annotations

import math

import structlog
import torch
import torch.nn.functional as F
from torch import nn

from trainer.detectors.components.embedding import PatchEmbedding
from trainer.detectors.components.grid import shrink

log = structlog.get_logger()

HARD_QUANTILE = 0.999
QUANTILE_LOW, QUANTILE_HIGH = 0.9, 0.995
EVAL_BATCH = 32


def _relu_convs(layers: list[tuple[int, int, int]], inputs: int) -> list[nn.Module]:
    """(outputs, kernel, padding) convolutions, each followed by ReLU."""
    modules: list[nn.Module] = []
    for outputs, kernel, padding in layers:
        modules += [nn.Conv2d(inputs, outputs, kernel, padding=padding), nn.ReLU(inplace=True)]
        inputs = outputs
    return modules


def pdn_small(outputs: int) -> nn.Sequential:
    """The paper's PDN-S: stride 4, 33-pixel receptive field."""
    return nn.Sequential(
        *_relu_convs([(128, 4, 3)], 3),
        nn.AvgPool2d(2, 2, 1),
        *_relu_convs([(256, 4, 3)], 128),
        nn.AvgPool2d(2, 2, 1),
        *_relu_convs([(256, 3, 1)], 256),
        nn.Conv2d(256, outputs, 4),
    )


def pdn_medium(outputs: int) -> nn.Sequential:
    """The paper's PDN-M: wider, two more layers, same stride and receptive field."""
    return nn.Sequential(
        *_relu_convs([(256, 4, 3)], 3),
        nn.AvgPool2d(2, 2, 1),
        *_relu_convs([(512, 4, 3)], 256),
        nn.AvgPool2d(2, 2, 1),
        *_relu_convs([(512, 1, 0), (512, 3, 1), (outputs, 4, 0)], 512),
        nn.Conv2d(outputs, outputs, 1),
    )


STUDENTS = {"s": pdn_small, "m": pdn_medium}


class FeatureAutoencoder(nn.Module):
    """Half-size image (N, 3, s, s) -> (N, C, g, g) predicted teacher features."""

    def __init__(self, image_size: int, grid: int, outputs: int, code: int = 64) -> None:
        super().__init__()
        encoder: list[nn.Module] = []
        size, inputs = image_size, 3
        for width in (32, 32, 64, 64, 64):
            encoder += [nn.Conv2d(inputs, width, 4, 2, 1), nn.ReLU(inplace=True)]
            size, inputs = max(1, size // 2), width
        encoder.append(nn.Conv2d(inputs, code, size))  # whatever is left -> 1 x 1
        self.encoder = nn.Sequential(*encoder)
        self.sizes = [max(2, grid // 8), max(2, grid // 4), max(2, grid // 2), grid, 2 * grid]
        self.grid = grid
        self.stages = nn.ModuleList(
            nn.Sequential(nn.Conv2d(code, code, 4, 1, 2), nn.ReLU(inplace=True), nn.Dropout(0.2))
            for _ in self.sizes
        )
        self.head = nn.Sequential(
            nn.Conv2d(code, code, 3, 1, 1), nn.ReLU(inplace=True), nn.Conv2d(code, outputs, 3, 1, 1)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.encoder(x)
        for size, stage in zip(self.sizes, self.stages, strict=True):
            y = stage(_resize(y, size))
        return self.head(_resize(y, self.grid))


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)


def hard_feature_loss(teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """Mean of the squared differences at or above their 0.999 quantile (the paper's L_hard)."""
    distance = (teacher - student).pow(2)
    threshold = torch.quantile(distance.detach().flatten(), HARD_QUANTILE)
    return distance[distance >= threshold].mean()


class EfficientAdCore(nn.Module):
    """Normalised image (1, 3, S, S) -> (1, 1, S/8, S/8) combined local + global anomaly map.

    `history` (one dict per evaluation: step, train_loss, val_loss), `best_step`,
    `best_val_loss` and `holdout_indices` describe the training run; plain attributes, not
    exported. Buffers: teacher channel mean/std and the (0.9, 0.995) quantiles of each map.
    `int8_modules` are the sub-networks the export may run in int8 (`training.int8`).
    """

    int8_modules = ("student", "autoencoder")

    def __init__(
        self, teacher: PatchEmbedding, variant: str, image_size: int, grid: int, channels: int
    ) -> None:
        super().__init__()
        self.teacher = teacher
        self.channels, self.grid = channels, grid
        self.student = STUDENTS[variant](2 * channels)
        self.autoencoder = FeatureAutoencoder(image_size // 2, grid, channels)
        self.register_buffer("teacher_mean", torch.zeros(1, channels, 1, 1))
        self.register_buffer("teacher_std", torch.ones(1, channels, 1, 1))
        self.register_buffer("local_quantiles", torch.tensor([0.0, 1.0]))
        self.register_buffer("global_quantiles", torch.tensor([0.0, 1.0]))
        self.history: list[dict[str, float]] = []
        self.best_step = 0
        self.best_val_loss = math.inf
        self.holdout_indices: list[int] = []

    def teacher_features(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised teacher features (N, C, g, g)."""
        return (self.teacher(x) - self.teacher_mean) / self.teacher_std

    def predict(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Student's teacher half, student's autoencoder half and the autoencoder's output."""
        half = shrink(x)
        student = self.student(half)
        if student.shape[-1] != self.grid or student.shape[-2] != self.grid:
            student = _resize(student, self.grid)
        c = self.channels
        return student[:, :c], student[:, c:], self.autoencoder(half)

    def loss(self, x: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        """The training loss: hard student-teacher + autoencoder-teacher + student-autoencoder."""
        student_st, student_ae, ae = self.predict(x)
        return (
            hard_feature_loss(teacher, student_st)
            + F.mse_loss(ae, teacher)
            + F.mse_loss(student_ae, ae)
        )

    def raw_maps(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Un-normalised (local, global) maps (N, 1, g, g)."""
        teacher = self.teacher_features(x)
        student_st, student_ae, ae = self.predict(x)
        local = (teacher - student_st).pow(2).mean(dim=1, keepdim=True)
        global_ = (ae - student_ae).pow(2).mean(dim=1, keepdim=True)
        return local, global_

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        local, global_ = self.raw_maps(x)
        local = _normalise(local, self.local_quantiles)
        global_ = _normalise(global_, self.global_quantiles)
        return (0.5 * local + 0.5 * global_).clamp_min(0.0)

    def evaluate_loss(self, images: torch.Tensor, teacher: torch.Tensor) -> float:
        """Mean training loss of `images` (with their normalised teacher features), eval mode."""
        self.eval()
        total = 0.0
        with torch.inference_mode():
            for x, t in zip(
                torch.split(images, EVAL_BATCH), torch.split(teacher, EVAL_BATCH), strict=True
            ):
                total += float(self.loss(x, t)) * len(x)
        return total / len(images)


def _normalise(amap: torch.Tensor, quantiles: torch.Tensor) -> torch.Tensor:
    """The paper's map normalisation: quantile q_a -> 0, q_b -> 0.1."""
    return 0.1 * (amap - quantiles[0]) / (quantiles[1] - quantiles[0])
