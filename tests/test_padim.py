"""PaDiM on small generated crops: finds a painted defect, exports to an equal ONNX graph."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
import torch
from detector_checks import (
    Trained,
    assert_defect_stands_out,
    assert_onnx_reproduces_torch,
    cli,
    defective_crop,
    fit_with_backbone,
    train_and_export,
    train_command_bundle,
)

from edge_agent.contracts.config import ConfigError
from trainer.detectors import DETECTORS
from trainer.detectors.padim import PadimCore, fit
from trainer.settings import TrainingSettings, load_config

SIZE = 64
DIMS = 60
EFFICIENTNET_CHANNELS = 40 + 112


def fit_core(settings: TrainingSettings, inputs: torch.Tensor) -> PadimCore:
    return fit_with_backbone(fit, settings, inputs)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    settings = TrainingSettings(method="padim", input_size=SIZE, padim_dims=DIMS)
    return train_and_export(fit, settings, tmp_path_factory.mktemp("padim"))


def test_gaussians_cover_every_grid_position_with_the_chosen_channels(trained: Trained) -> None:
    core = trained.graph.core
    grid = (SIZE // 8) ** 2  # the finer stage has stride 8

    assert core.channels.shape == (DIMS,)
    assert torch.all(core.channels[1:] > core.channels[:-1])  # sorted, no repeats
    assert int(core.channels.min()) >= 0 and int(core.channels.max()) < EFFICIENTNET_CHANNELS
    assert core.mean.shape == (grid, DIMS)
    assert core.inv_covariance.shape == (grid, DIMS, DIMS)
    assert core.inv_covariance.dtype == torch.float32
    torch.testing.assert_close(core.inv_covariance, core.inv_covariance.transpose(1, 2))


def test_distance_is_the_mahalanobis_distance_under_the_regularised_covariance(
    trained: Trained,
) -> None:
    """The exported maths equals z^T (S + 0.01 I)^-1 z computed directly in float64."""
    core = trained.graph.core
    with torch.inference_mode():
        train = core.embedding(trained.inputs).index_select(1, core.channels).double()
        query = trained.graph.preprocess(torch.from_numpy(defective_crop()[None]))
        got = core(query)[0, 0].flatten()
        feature = core.embedding(query).index_select(1, core.channels).double()
    width = train.shape[-1]
    for position in (0, 27, len(got) - 1):
        samples = train[:, :, position // width, position % width]
        covariance = torch.cov(samples.T) + 0.01 * torch.eye(DIMS, dtype=torch.float64)
        z = feature[0, :, position // width, position % width] - samples.mean(dim=0)
        expected = torch.sqrt(z @ torch.linalg.solve(covariance, z))
        assert float(got[position]) == pytest.approx(float(expected), rel=1e-3)


def test_painted_defect_scores_clearly_above_held_out_ok(trained: Trained) -> None:
    assert_defect_stands_out(trained.graph, trained.holdout, ratio=2.0, within_px=10)


def test_onnx_passes_parity_and_reproduces_torch_scores(trained: Trained) -> None:
    tolerance = trained.settings.parity_tolerance
    assert_onnx_reproduces_torch(trained.graph, trained.onnx_path, trained.holdout, tolerance, 1e-3)


def test_the_same_seed_gives_the_same_model_and_another_seed_other_channels(
    trained: Trained,
) -> None:
    first = trained.graph.core
    again = fit_core(trained.settings, trained.inputs)
    other = fit_core(trained.settings.model_copy(update={"seed": 1}), trained.inputs)

    assert torch.equal(again.channels, first.channels)
    assert torch.equal(again.mean, first.mean)
    assert torch.equal(again.inv_covariance, first.inv_covariance)
    assert not torch.equal(other.channels, first.channels)


def test_more_dims_than_channels_uses_every_channel(trained: Trained) -> None:
    settings = trained.settings.model_copy(update={"padim_dims": 1000})

    core = fit_core(settings, trained.inputs[:6])

    assert torch.equal(core.channels, torch.arange(EFFICIENTNET_CHANNELS))
    assert core.inv_covariance.shape[1:] == (EFFICIENTNET_CHANNELS, EFFICIENTNET_CHANNELS)


def test_config_methods_are_the_registered_detectors() -> None:
    allowed = get_args(TrainingSettings.model_fields["method"].annotation)

    assert (
        set(allowed)
        == set(DETECTORS)
        == {
            "patchcore",
            "padim",
            "autoencoder",
            "efficientad-s",
            "efficientad-m",
        }
    )
    assert TrainingSettings().padim_dims == 100


def test_an_unknown_method_in_the_config_names_the_allowed_ones(tmp_path: Path) -> None:
    config = tmp_path / "edge.toml"
    config.write_text('[training]\nmethod = "padin"\n', encoding="utf-8")

    with pytest.raises(ConfigError) as error:
        load_config(config)

    message = str(error.value)
    assert str(config) in message and "training.method" in message
    assert "'patchcore'" in message and "'padim'" in message and "'padin'" in message


def test_train_with_an_unknown_method_flag_is_a_one_line_error(tmp_path: Path) -> None:
    result = cli("train", "--method", "padin", "--data", tmp_path, "--out", tmp_path, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "--method" in result.stderr and "'padim'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_train_command_installs_a_padim_bundle_ok_only_without_cross_fitting(
    tmp_path: Path,
) -> None:
    """Half-size PaDiM fits score new OK far higher than the full model: its OK-only threshold
    comes from the held-out OK alone."""
    manifest = train_command_bundle(tmp_path, "padim", connector="J4")

    assert manifest.training.params["padim_dims"] == 100
    assert manifest.calibration.mode == "ok-only"
    assert manifest.calibration.n_ok == manifest.training.n_holdout_ok
    assert "out-of-fold" not in manifest.calibration.guarantee
