"""The autoencoder's training: reconstruction of OK crops, early stopping, map scales."""

from __future__ import annotations

import structlog
import torch
from torch import nn

from trainer.detectors.autoencoder.network import (
    EVAL_BATCH,
    AutoencoderCore,
    ReconstructionLoss,
    UNetAutoencoder,
)
from trainer.detectors.components.grid import shrink
from trainer.detectors.components.training import EarlyStopping, split_holdout
from trainer.progress import bar
from trainer.settings import TrainingSettings

log = structlog.get_logger()


def fit(images: torch.Tensor, backbone: nn.Module, settings: TrainingSettings) -> AutoencoderCore:
    """Train the autoencoder on normalised OK images (N, 3, S, S), keep its best held-out state."""
    torch.manual_seed(settings.seed)
    images = images.clone()  # a normal tensor: the callers' may be an inference-mode one
    train_idx, val_idx = split_holdout(len(images), settings.seed)
    train = shrink(images[train_idx])
    data_range = float(images.max() - images.min())
    core = AutoencoderCore(
        UNetAutoencoder(), ReconstructionLoss(backbone, data_range, images.shape[-1])
    )
    core.holdout_indices = val_idx.tolist()
    with torch.no_grad():
        targets = [core.loss.features(b) for b in torch.split(train, EVAL_BATCH)]
    fine = torch.cat([t[0] for t in targets])
    coarse = torch.cat([t[1] for t in targets])
    core.loss.feature_norms = (float(fine.pow(2).mean()), float(coarse.pow(2).mean()))
    optimiser = torch.optim.Adam(core.autoencoder.parameters(), lr=settings.ae_lr)
    generator = torch.Generator().manual_seed(settings.seed)
    stopping = EarlyStopping(core.autoencoder, settings.ae_patience)
    with bar(settings.ae_epochs, "autoencoder") as progress:
        for epoch in range(1, settings.ae_epochs + 1):
            core.train()
            core.loss.backbone.eval()  # frozen: keep its batch-norm statistics
            order = torch.randperm(len(train), generator=generator)
            total = 0.0
            for batch in torch.split(order, settings.ae_batch):
                x = train[batch]
                loss = core.loss(x, core.autoencoder(x), (fine[batch], coarse[batch]))
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                total += float(loss.detach()) * len(batch)
            val_loss = core.evaluate_loss(images[val_idx])
            core.history.append(
                {"epoch": epoch, "train_loss": total / len(train), "val_loss": val_loss}
            )
            log.info(
                "epoch",
                epoch=epoch,
                train_loss=round(total / len(train), 4),
                val_loss=round(val_loss, 4),
            )
            progress.update(1)
            if stopping.update(val_loss, epoch):
                log.info("early stop", epoch=epoch, best_epoch=stopping.best_round)
                break
    stopping.restore()
    core.best_val_loss, core.best_epoch = stopping.best_loss, stopping.best_round
    core.eval()
    with torch.inference_mode():
        batches = torch.split(shrink(images[val_idx]), EVAL_BATCH)
        maps = [core.loss.error_maps(b, core.autoencoder(b)) for b in batches]
        peaks = [torch.cat([m[i] for m in maps]).amax(dim=(1, 2, 3)).mean() for i in range(3)]
    core.scales.copy_(torch.stack(peaks).clamp_min(1e-8))
    log.info(
        "autoencoder",
        images=len(train),
        held_out=len(val_idx),
        epochs=len(core.history),
        best_epoch=core.best_epoch,
        best_val_loss=round(core.best_val_loss, 4),
        params=sum(p.numel() for p in core.autoencoder.parameters()),
    )
    return core
