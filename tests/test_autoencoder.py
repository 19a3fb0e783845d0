"""The U-Net autoencoder on small generated crops: finds a painted defect, exports, stops early."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from detector_checks import (
    Trained,
    assert_defect_stands_out,
    assert_onnx_reproduces_torch,
    fit_with_backbone,
    train_and_export,
    train_command_bundle,
)

from trainer.detectors import DETECTORS
from trainer.detectors.autoencoder import AutoencoderCore, fit
from trainer.detectors.components.training import split_holdout
from trainer.settings import TrainingSettings

SIZE = 64


def fit_core(settings: TrainingSettings, inputs: torch.Tensor) -> AutoencoderCore:
    return fit_with_backbone(fit, settings, inputs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    settings = TrainingSettings(
        method="autoencoder", input_size=SIZE, ae_epochs=12, ae_patience=12, ae_batch=4
    )
    return train_and_export(fit, settings, tmp_path_factory.mktemp("autoencoder"))


def test_the_core_maps_an_image_to_one_score_map_on_the_working_grid(trained: Trained) -> None:
    core = trained.graph.core
    with torch.inference_mode():
        amap = core(trained.inputs[:1])

    assert amap.shape == (1, 1, SIZE // 2, SIZE // 2)
    assert bool(torch.all(amap >= 0))
    assert bool(torch.all(core.scales > 0))
    assert len(core.history) == 12 and core.best_epoch >= 1


def test_painted_defect_scores_clearly_above_held_out_ok(trained: Trained) -> None:
    assert_defect_stands_out(trained.graph, trained.holdout, ratio=1.5, within_px=10)


def test_onnx_passes_parity_and_reproduces_torch_scores(trained: Trained) -> None:
    tolerance = trained.settings.parity_tolerance
    assert_onnx_reproduces_torch(trained.graph, trained.onnx_path, trained.holdout, tolerance, 1e-3)


def test_early_stopping_restores_the_best_held_out_state(trained: Trained) -> None:
    """Whole-batch steps at a high learning rate soon make the held-out loss rise again."""
    settings = trained.settings.model_copy(
        update={"ae_epochs": 10, "ae_patience": 2, "ae_lr": 0.01, "ae_batch": 16}
    )

    core = fit_core(settings, trained.inputs[:12])

    losses = [epoch["val_loss"] for epoch in core.history]
    assert len(losses) < settings.ae_epochs  # stopped early
    assert core.best_epoch < len(losses)  # ... after epochs worse than the best
    assert core.best_val_loss == min(losses) == losses[core.best_epoch - 1]
    assert all(loss > core.best_val_loss for loss in losses[core.best_epoch :])
    held_out = trained.inputs[:12][core.holdout_indices]
    assert core.evaluate_loss(held_out) == pytest.approx(core.best_val_loss, rel=1e-5)


def test_the_same_seed_gives_the_same_weights_and_another_seed_others(trained: Trained) -> None:
    settings = trained.settings.model_copy(update={"ae_epochs": 2})
    inputs = trained.inputs[:12]

    first = fit_core(settings, inputs).state_dict()
    again = fit_core(settings, inputs).state_dict()
    other = fit_core(settings.model_copy(update={"seed": 1}), inputs).state_dict()

    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not torch.equal(first["autoencoder.out.weight"], other["autoencoder.out.weight"])


def test_the_held_out_split_is_seeded_disjoint_and_about_an_eighth() -> None:
    train, held = split_holdout(200, seed=0)
    again_train, again_held = split_holdout(200, seed=0)
    _, other_held = split_holdout(200, seed=1)

    assert torch.equal(train, again_train) and torch.equal(held, again_held)
    assert not torch.equal(held, other_held)
    assert len(held) == 24 and len(train) == 176
    assert sorted(train.tolist() + held.tolist()) == list(range(200))
    assert [len(part) for part in split_holdout(2, seed=0)] == [1, 1]
    with pytest.raises(ValueError, match="at least 2"):
        split_holdout(1, seed=0)


def test_autoencoder_is_a_registered_method_with_bounded_settings() -> None:
    defaults = TrainingSettings()

    assert DETECTORS["autoencoder"] is fit
    assert TrainingSettings(method="autoencoder").method == "autoencoder"
    assert defaults.ae_epochs >= 1 and defaults.ae_patience >= 1 and defaults.ae_batch >= 1
    for bad in ({"ae_epochs": 0}, {"ae_patience": 0}, {"ae_batch": 0}, {"ae_lr": 0}):
        with pytest.raises(ValueError):
            TrainingSettings(**bad)


@pytest.mark.slow
def test_train_command_installs_an_autoencoder_bundle(tmp_path: Path) -> None:
    manifest = train_command_bundle(tmp_path, "autoencoder")

    assert manifest.training.params["ae_epochs"] == TrainingSettings().ae_epochs
