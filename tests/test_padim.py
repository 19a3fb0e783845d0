"""PaDiM on small generated crops: finds a painted defect, exports to an equal ONNX graph."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from edge_agent.bundle import read_manifest, verify_bundle
from edge_agent.config import ConfigError, TrainingSettings, load_config
from trainer.backbones import build_backbone
from trainer.detectors import DETECTORS
from trainer.detectors.padim import PadimCore, fit
from trainer.export import check_parity, export_onnx, torch_scores
from trainer.graph import AnomalyGraph, Postprocess, Preprocess
from trainer.synth.station import generate_station

ROOT = Path(__file__).resolve().parents[1]
H, W = 48, 72
SIZE = 64
DIMS = 60
DEFECT_CENTRE = (24, 22)  # x, y in crop pixels
EFFICIENTNET_CHANNELS = 40 + 112
# MIN_BOARDS (10) gives J1 one val board, one OK crop short of what calibration needs;
# 24 boards give it 3 val boards (one KO), so 2 held-out OK crops.
STATION_BOARDS = 24


def connector_crop(seed: int) -> np.ndarray:
    """An OK connector-like crop (BGR uint8): pin stripes on a dark housing, with sensor noise."""
    yy, xx = np.mgrid[0:H, 0:W]
    image = np.empty((H, W, 3), np.float32)
    image[..., 0] = 130 + 45 * np.sin(xx / 3.0)
    image[..., 1] = 115 + 35 * np.cos(yy / 4.0)
    image[..., 2] = 95 + 25 * np.sin((xx - yy) / 6.0)
    image[12:36, 16:56] = (55, 60, 65)
    noise = np.random.default_rng(seed).normal(0, 4, (H, W, 3))
    return (image + noise).clip(0, 255).astype(np.uint8)


def defective_crop() -> np.ndarray:
    """An OK crop with a bright blob painted on the housing (a foreign particle)."""
    crop = connector_crop(999)
    cv2.circle(crop, DEFECT_CENTRE, 7, (235, 235, 235), -1)
    return crop


def embed_inputs(settings: TrainingSettings, crops: np.ndarray) -> tuple[torch.Tensor, Preprocess]:
    """Normalised model inputs of `crops`, and the preprocessing that made them."""
    _, info = build_backbone(settings.backbone, settings.input_size)
    preprocess = Preprocess(settings.input_size, settings.color_mode, info.mean, info.std)
    with torch.inference_mode():
        return torch.cat([preprocess(torch.from_numpy(c[None])) for c in crops]), preprocess


def fit_core(settings: TrainingSettings, inputs: torch.Tensor) -> PadimCore:
    backbone, _ = build_backbone(settings.backbone, settings.input_size)
    return fit(inputs, backbone, settings)


@dataclass
class Trained:
    graph: AnomalyGraph
    onnx_path: Path
    inputs: torch.Tensor
    holdout: np.ndarray
    settings: TrainingSettings


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    settings = TrainingSettings(method="padim", input_size=SIZE, padim_dims=DIMS)
    inputs, preprocess = embed_inputs(settings, np.stack([connector_crop(s) for s in range(24)]))
    core = fit_core(settings, inputs)
    graph = AnomalyGraph(preprocess, core, Postprocess(SIZE, torch.ones(SIZE, SIZE))).eval()
    path = tmp_path_factory.mktemp("padim") / "model.onnx"
    export_onnx(graph, (H, W), path)
    holdout = np.stack([connector_crop(seed) for seed in range(100, 108)])
    return Trained(graph, path, inputs, holdout, settings)


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
    ok_scores, _ = torch_scores(trained.graph, trained.holdout)
    defect_score, defect_map = torch_scores(trained.graph, defective_crop()[None])

    assert defect_score[0] > 2.0 * ok_scores.max()
    peak_y, peak_x = np.unravel_index(np.argmax(defect_map[0]), defect_map[0].shape)
    expected_x, expected_y = DEFECT_CENTRE[0] * SIZE / W, DEFECT_CENTRE[1] * SIZE / H
    assert abs(peak_x - expected_x) < 10 and abs(peak_y - expected_y) < 10


def test_onnx_passes_parity_and_reproduces_torch_scores(trained: Trained) -> None:
    crops = np.concatenate([trained.holdout, defective_crop()[None]])

    worst = check_parity(trained.graph, trained.onnx_path, crops, trained.settings.parity_tolerance)

    assert worst <= trained.settings.parity_tolerance
    expected_scores, expected_maps = torch_scores(trained.graph, crops)
    session = ort.InferenceSession(str(trained.onnx_path), providers=["CPUExecutionProvider"])
    for crop, score, amap in zip(crops, expected_scores, expected_maps, strict=True):
        got_map, got_score = session.run(["anomaly_map", "score"], {"crop": crop[None]})
        assert got_score[0] == pytest.approx(score, rel=1e-4)
        np.testing.assert_allclose(got_map[0], amap, rtol=1e-3, atol=1e-3)


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


def cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `edge-inspect ARGS` as its own process, the way a user runs it."""
    return subprocess.run(
        [sys.executable, "-m", "edge_agent.cli", *map(str, args)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_train_with_an_unknown_method_flag_is_a_one_line_error(tmp_path: Path) -> None:
    result = cli("train", "--method", "padin", "--data", tmp_path, "--out", tmp_path, cwd=tmp_path)

    assert result.returncode == 2, result.stderr
    assert "--method" in result.stderr and "'padim'" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_train_command_installs_a_padim_bundle(tmp_path: Path) -> None:
    generate_station(tmp_path / "station", seed=0, boards=STATION_BOARDS, progress=False, workers=1)
    models = tmp_path / "models"

    result = cli(
        "train",
        "--method",
        "padim",
        "--input-size",
        "64",
        "--data",
        tmp_path / "station" / "crops" / "J1",
        "--out",
        models,
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    active = models / "J1" / "active"
    manifest = verify_bundle(active.resolve())
    assert read_manifest(active) == manifest
    assert manifest.method == "padim" and manifest.model_input_size == 64
    assert manifest.training.params["padim_dims"] == 100
    assert manifest.training.params["parity_max_relative_error"] <= manifest.parity_tolerance
