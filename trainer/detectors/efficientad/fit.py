"""EfficientAD's training: student and autoencoder regress the frozen teacher on OK crops."""

from __future__ import annotations

import structlog
import torch
from torch import nn

from trainer.detectors.components.embedding import PatchEmbedding, embed_all
from trainer.detectors.components.training import EarlyStopping, split_holdout
from trainer.detectors.efficientad.network import (
    EVAL_BATCH,
    QUANTILE_HIGH,
    QUANTILE_LOW,
    STUDENTS,
    EfficientAdCore,
)
from trainer.progress import bar
from trainer.settings import TrainingSettings

log = structlog.get_logger()


def _quantiles(maps: torch.Tensor) -> torch.Tensor:
    values = maps.flatten()
    low, high = torch.quantile(values, torch.tensor([QUANTILE_LOW, QUANTILE_HIGH]))
    return torch.stack([low, torch.maximum(high, low + 1e-8)])


def fit(
    images: torch.Tensor, backbone: nn.Module, settings: TrainingSettings, variant: str = "s"
) -> EfficientAdCore:
    """Train student and autoencoder on normalised OK images (N, 3, S, S); best held-out state."""
    if variant not in STUDENTS:
        raise ValueError(f"unknown EfficientAD variant {variant!r}; known: {sorted(STUDENTS)}")
    torch.manual_seed(settings.seed)
    images = images.clone()  # a normal tensor: the callers' may be an inference-mode one
    size = images.shape[-1]
    train_idx, val_idx = split_holdout(len(images), settings.seed)
    teacher = PatchEmbedding(backbone, settings.neighbourhood).eval()
    features = embed_all(teacher, images).clone()
    core = EfficientAdCore(teacher, variant, size, features.shape[-1], features.shape[1])
    core.holdout_indices = val_idx.tolist()
    train_features = features[train_idx]
    core.teacher_mean.copy_(train_features.mean(dim=(0, 2, 3), keepdim=True))
    core.teacher_std.copy_(train_features.std(dim=(0, 2, 3), keepdim=True).clamp_min(1e-6))
    targets = (features - core.teacher_mean) / core.teacher_std
    train, train_targets = images[train_idx], targets[train_idx]
    val, val_targets = images[val_idx], targets[val_idx]
    trainable = [*core.student.parameters(), *core.autoencoder.parameters()]
    optimiser = torch.optim.Adam(trainable, lr=settings.ead_lr, weight_decay=1e-5)
    generator = torch.Generator().manual_seed(settings.seed)
    stopping = EarlyStopping(nn.ModuleList([core.student, core.autoencoder]), settings.ead_patience)
    order = torch.randperm(len(train), generator=generator)
    position, total, counted = 0, 0.0, 0
    with bar(settings.ead_steps, f"efficientad-{variant}") as progress:
        for step in range(1, settings.ead_steps + 1):
            core.train()
            core.teacher.eval()  # frozen: keep its batch-norm statistics
            if position + settings.ead_batch > len(order):
                order, position = torch.randperm(len(train), generator=generator), 0
            batch = order[position : position + settings.ead_batch]
            position += len(batch)
            loss = core.loss(train[batch], train_targets[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total, counted = total + float(loss.detach()), counted + 1
            progress.update(1)
            if step % settings.ead_eval_every and step != settings.ead_steps:
                continue
            val_loss = core.evaluate_loss(val, val_targets)
            core.history.append({"step": step, "train_loss": total / counted, "val_loss": val_loss})
            log.info(
                "evaluation",
                step=step,
                train_loss=round(total / counted, 4),
                val_loss=round(val_loss, 4),
            )
            total, counted = 0.0, 0
            if stopping.update(val_loss, step):
                log.info("early stop", step=step, best_step=stopping.best_round)
                break
    stopping.restore()
    core.best_val_loss, core.best_step = stopping.best_loss, stopping.best_round
    core.eval()
    with torch.inference_mode():
        maps = [core.raw_maps(x) for x in torch.split(val, EVAL_BATCH)]
        core.local_quantiles.copy_(_quantiles(torch.cat([m[0] for m in maps])))
        core.global_quantiles.copy_(_quantiles(torch.cat([m[1] for m in maps])))
    log.info(
        "efficientad",
        variant=variant,
        images=len(train),
        held_out=len(val_idx),
        steps=core.history[-1]["step"] if core.history else 0,
        best_step=core.best_step,
        best_val_loss=round(core.best_val_loss, 4),
        params=sum(p.numel() for p in trainable),
    )
    return core


def fit_small(images: torch.Tensor, backbone: nn.Module, settings: TrainingSettings) -> nn.Module:
    """EfficientAD-S (`--method efficientad-s`)."""
    return fit(images, backbone, settings, "s")


def fit_medium(images: torch.Tensor, backbone: nn.Module, settings: TrainingSettings) -> nn.Module:
    """EfficientAD-M (`--method efficientad-m`)."""
    return fit(images, backbone, settings, "m")
