"""Shared pieces of the detector tests: small generated crops, the CLI, common checks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch
from torch import nn

from edge_agent.contracts.bundle import Manifest, read_manifest, verify_bundle
from trainer.detectors.components.backbones import build_backbone
from trainer.export import check_parity, export_onnx, torch_scores
from trainer.graph import AnomalyGraph, Postprocess, Preprocess
from trainer.settings import TrainingSettings
from trainer.synth.station import generate_station

ROOT = Path(__file__).resolve().parents[1]
H, W = 48, 72
DEFECT_CENTRE = (24, 22)  # x, y in crop pixels
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


@dataclass
class Trained:
    """A detector fitted on generated OK crops, its graph exported, and held-out OK crops."""

    graph: AnomalyGraph
    onnx_path: Path
    inputs: torch.Tensor
    holdout: np.ndarray
    settings: TrainingSettings


def fit_with_backbone(
    fit: Callable[..., nn.Module], settings: TrainingSettings, inputs: torch.Tensor, *extra: str
) -> nn.Module:
    """`fit(inputs, backbone, settings, *extra)` with the settings' pretrained backbone."""
    backbone, _ = build_backbone(settings.backbone, settings.input_size)
    return fit(inputs, backbone, settings, *extra)


def train_and_export(
    fit: Callable[..., nn.Module], settings: TrainingSettings, folder: Path
) -> Trained:
    """Fit on 24 generated OK crops, wrap in the graph (flat ROI), export to `folder`."""
    inputs, preprocess = embed_inputs(settings, np.stack([connector_crop(s) for s in range(24)]))
    core = fit_with_backbone(fit, settings, inputs)
    size = settings.input_size
    graph = AnomalyGraph(preprocess, core, Postprocess(size, torch.ones(size, size))).eval()
    path = folder / "model.onnx"
    export_onnx(graph, (H, W), path)
    holdout = np.stack([connector_crop(seed) for seed in range(100, 108)])
    return Trained(graph, path, inputs, holdout, settings)


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


def assert_defect_stands_out(
    graph: AnomalyGraph, holdout: np.ndarray, ratio: float, within_px: float
) -> None:
    """The painted defect scores `ratio` x the best held-out OK, its map peaking at the blob."""
    ok_scores, _ = torch_scores(graph, holdout)
    defect_score, defect_map = torch_scores(graph, defective_crop()[None])

    assert defect_score[0] > ratio * ok_scores.max()
    size = defect_map[0].shape[0]
    peak_y, peak_x = np.unravel_index(np.argmax(defect_map[0]), defect_map[0].shape)
    expected_x, expected_y = DEFECT_CENTRE[0] * size / W, DEFECT_CENTRE[1] * size / H
    assert abs(peak_x - expected_x) < within_px and abs(peak_y - expected_y) < within_px


def assert_onnx_reproduces_torch(
    graph: AnomalyGraph, onnx_path: Path, holdout: np.ndarray, tolerance: float, map_atol: float
) -> None:
    """The export passes the parity check and onnxruntime gives torch's scores and maps."""
    crops = np.concatenate([holdout, defective_crop()[None]])

    assert check_parity(graph, onnx_path, crops, tolerance) <= tolerance
    expected_scores, expected_maps = torch_scores(graph, crops)
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for crop, score, amap in zip(crops, expected_scores, expected_maps, strict=True):
        got_map, got_score = session.run(["anomaly_map", "score"], {"crop": crop[None]})
        assert got_score[0] == pytest.approx(score, rel=1e-4)
        np.testing.assert_allclose(got_map[0], amap, rtol=1e-3, atol=map_atol)


def train_command_bundle(
    tmp_path: Path, method: str, *flags: str, connector: str = "J1"
) -> Manifest:
    """`edge-inspect train --method METHOD --input-size 64 FLAGS` on a generated station's
    `connector` (J1 has KO, J4 has none)."""
    generate_station(tmp_path / "station", seed=0, boards=STATION_BOARDS, progress=False, workers=1)
    models = tmp_path / "models"
    data = tmp_path / "station" / "crops" / connector
    args = ("train", "--method", method, "--input-size", "64", *flags)
    result = cli(*args, "--data", data, "--out", models, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    active = models / connector / "active"
    manifest = verify_bundle(active.resolve())
    assert read_manifest(active) == manifest
    assert manifest.method == method and manifest.model_input_size == 64
    assert manifest.training.params["parity_max_relative_error"] <= manifest.parity_tolerance
    return manifest
