"""The trainer's settings: the `[training]` and `[retrain]` sections of the station config.

The agent's schema knows these sections' key names and keeps their values as written (it never
imports the trainer); the trainer loads the same file with `TrainerConfig`, which types and
checks every value.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from edge_agent.contracts import config as station
from edge_agent.contracts.config import Section, ShadowSettings, StationConfig


class TrainingSettings(Section):
    """How each connector's model is built; `edge-inspect train` options override these."""

    method: Literal["patchcore", "padim", "autoencoder", "efficientad-s", "efficientad-m"] = Field(
        default="patchcore",
        description="detector: patchcore (memory bank of patch features), padim (Gaussian per "
        "patch), autoencoder (reconstruction error), efficientad-s / -m (student-teacher)",
    )
    backbone: Literal["efficientnet-lite0", "resnet18", "wide_resnet50_2"] = Field(
        default="efficientnet-lite0",
        description="pretrained feature extractor of patchcore and padim",
    )
    backbone_weights: Path | None = Field(
        default=None,
        description="torchvision-format weights file for resnet18 / wide_resnet50_2",
    )
    input_size: int = Field(
        default=128,
        ge=32,
        description="model input, pixels square, of a crop under 1.5 times this a side (the "
        "smallest any crop gets); ROI coordinates are given at this size",
    )
    input_size_max: int = Field(
        default=224,
        ge=32,
        description="a larger crop's model input: its geometric-mean side rounded down to a "
        "multiple of 64, at most this (set to input_size for one size for all)",
    )
    color_mode: Literal["gray", "rgb"] = Field(
        default="gray", description="crops scored in gray or in colour"
    )
    coreset_ratio: float = Field(
        default=0.1, gt=0, le=1, description="PatchCore: share of patches kept in the memory bank"
    )
    coreset_max: int = Field(
        default=1600,
        ge=1,
        description="PatchCore: most patches in the memory bank at input_size; a larger input "
        "scales it by its area",
    )
    coreset_radius_share: float = Field(
        default=0.4,
        gt=0,
        le=1,
        description="PatchCore: the memory bank stops growing once every training patch lies "
        "within this share of the patches' spread (the coverage radius of the first 50 picks) "
        "of a bank patch: a plain connector gets a small, fast bank, a texture up to "
        "coreset_max",
    )
    projection_dim: int = 128
    neighbourhood: int = 3
    padim_dims: int = Field(
        default=100, ge=1, description="PaDiM: random channel subset size (seeded by `seed`)"
    )
    ae_epochs: int = Field(default=30, ge=1, description="autoencoder: most training epochs")
    ae_patience: int = Field(
        default=5, ge=1, description="autoencoder: epochs without a better held-out loss"
    )
    ae_batch: int = Field(default=16, ge=1, description="autoencoder: training batch size")
    ae_lr: float = Field(default=2e-3, gt=0, le=1, description="autoencoder: Adam learning rate")
    ead_steps: int = Field(default=300, ge=1, description="EfficientAD: most training steps")
    ead_eval_every: int = Field(
        default=25, ge=1, description="EfficientAD: steps between held-out evaluations"
    )
    ead_patience: int = Field(
        default=4, ge=1, description="EfficientAD: evaluations without a better held-out loss"
    )
    ead_batch: int = Field(default=4, ge=1, description="EfficientAD: training batch size")
    ead_lr: float = Field(default=1e-3, gt=0, le=1, description="EfficientAD: Adam learning rate")
    int8: bool = Field(
        default=True,
        description="run a detector's trained sub-networks in int8 (EfficientAD student and "
        "autoencoder; the teacher stays float); the threshold is calibrated on the int8 model",
    )
    mask: Literal["uniform", "variance"] = Field(
        default="uniform",
        description="weight mask without a ROI: uniform, or low where OK crops vary (variance); "
        "the variance mask also mutes where real defects often start (edges, busbars)",
    )
    mask_min_weight: float = Field(default=0.1, gt=0)
    mask_max_weight: float = Field(default=2.0, gt=0)
    roi_file: Path | None = None
    target_false_reject: float = Field(
        default=0.005, gt=0, lt=1, description="OK-only threshold: false-reject rate aimed at"
    )
    ok_only_confidence: float = Field(
        default=0.9,
        gt=0,
        lt=1,
        description="OK-only threshold: confidence with which the target false reject holds "
        "(if the OK tail is no heavier than exponential): the tail's scale is taken at this "
        "upper confidence bound",
    )
    ok_only_spread: float = Field(
        default=0.0,
        ge=0,
        description="OK-only threshold: standard deviations of the OK scores added on top "
        "(optional room; the margin for the evidence comes from ok_only_confidence)",
    )
    ok_only_margin: float = Field(
        default=0.0, ge=0, description="extra guard band above an OK-only threshold (fraction)"
    )
    ko_side: float = Field(
        default=0.25,
        ge=0,
        le=1,
        description="with held-out KO: threshold from the OK limit (0) to the weakest KO (1)",
    )
    holdout_fraction: float = Field(default=0.2, gt=0, lt=1)
    parity_tolerance: float = 1e-3
    seed: int = Field(default=0, ge=0, description="seed of every random choice in training")


class RetrainSettings(ShadowSettings):
    """The nightly retraining job (`edge-inspect trainer` or `retrain --now`) and its rollout;
    `shadow_boards` comes from the agent's view of this section, which runs the shadow."""

    schedule: str = Field(
        default="0 2 * * *",
        description="cron: minute hour day month weekday, in the line PC's local time",
    )
    misfire_grace_s: int = Field(default=6 * 3600, gt=0)
    seed_data: Path | None = Field(
        default=None, description="the initial crop data set: <connector>/train/ok, val/ok, val/ko"
    )
    max_train: int = Field(default=400, ge=10)
    new_share: float = Field(default=0.5, gt=0, le=1)
    max_holdout: int = Field(default=400, ge=2)
    gate_share: float = Field(default=0.5, gt=0, lt=1)
    false_reject_tolerance: float = Field(default=0.005, ge=0, lt=1)
    rollout: Literal["auto", "shadow"] = "shadow"
    keep_versions: int = Field(default=5, ge=2)
    nice: int = Field(default=10, ge=0, le=19)
    threads: int = Field(default=0, ge=0, description="torch threads; 0: torch's default")
    recalibrate: bool = Field(
        default=True,
        description="a connector not retrained gets a threshold from its own scores at the line",
    )
    recalibrate_min_ok: int = Field(
        default=100,
        ge=2,
        description="recalibration: fewest OK scores under the active version to act on; at "
        "100 the split-conformal floor for twice the 0.5 % target exists",
    )
    recalibrate_confidence: float = Field(
        default=0.9, gt=0, lt=1, description="recalibration: confidence of the stated bound"
    )
    recalibrate_boards: int = Field(
        default=20000, ge=10, description="recalibration: newest boards read from the journal"
    )
    recalibrate_min_change: float = Field(
        default=0.02, ge=0, description="recalibration: smallest relative change rolled out"
    )

    @field_validator("schedule")
    @classmethod
    def _five_fields(cls, schedule: str) -> str:
        if len(schedule.split()) != 5:
            raise ValueError(f"schedule {schedule!r} is not a 5-field cron expression")
        return schedule


class TrainerConfig(StationConfig):
    """The station config with the trainer's sections typed: what every trainer command loads."""

    training: TrainingSettings = Field(default_factory=TrainingSettings)
    retrain: RetrainSettings = Field(default_factory=RetrainSettings)


def load_config(path: Path | None) -> TrainerConfig:
    """The station config at `path`, its `[training]` and `[retrain]` checked."""
    return station.load_config(path, TrainerConfig)


def load_config_for_command(prog: str, path: Path | None) -> TrainerConfig | None:
    """`load_config` for a command line: None after printing `prog: error: ...` to stderr."""
    return station.load_config_for_command(prog, path, TrainerConfig)
