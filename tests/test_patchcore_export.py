"""PatchCore on small generated crops: finds a painted defect, exports to an equal ONNX graph."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort
import pytest
import torch

from trainer.detectors.components.backbones import build_backbone
from trainer.detectors.patchcore import fit
from trainer.export import ExportError, check_parity, export_onnx, torch_scores
from trainer.graph import AnomalyGraph, Postprocess, Preprocess
from trainer.masks import variance_mask
from trainer.settings import TrainingSettings

H, W = 60, 90
SIZE = 128
BLOB_CENTRE = (30, 28)  # x, y in crop pixels


def board_texture() -> np.ndarray:
    """A connector-like crop: striped body, darker housing, in BGR floats."""
    yy, xx = np.mgrid[0:H, 0:W]
    image = np.empty((H, W, 3), np.float32)
    image[..., 0] = 120 + 50 * np.sin(xx / 4.0)
    image[..., 1] = 110 + 40 * np.cos(yy / 3.0)
    image[..., 2] = 100 + 30 * np.sin((xx + yy) / 5.0)
    image[15:45, 20:70] = (60, 60, 70)
    return image


def ok_crop(seed: int) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 4, (H, W, 3))
    return (board_texture() + noise).clip(0, 255).astype(np.uint8)


def defect_crop() -> np.ndarray:
    crop = ok_crop(999)
    cv2.circle(crop, BLOB_CENTRE, 9, (240, 240, 240), -1)
    return crop


@dataclass
class Trained:
    graph: AnomalyGraph
    onnx_path: Path
    holdout: np.ndarray
    settings: TrainingSettings


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Trained:
    settings = TrainingSettings(input_size=SIZE, coreset_max=200)
    train = np.stack([ok_crop(seed) for seed in range(30)])
    backbone, info = build_backbone(settings.backbone, settings.input_size)
    preprocess = Preprocess(SIZE, settings.color_mode, info.mean, info.std)
    with torch.inference_mode():
        inputs = torch.cat([preprocess(torch.from_numpy(c[None])) for c in train])
    weights = variance_mask(
        inputs.mean(dim=1).numpy(), settings.mask_min_weight, settings.mask_max_weight
    )
    core = fit(inputs, backbone, settings)
    graph = AnomalyGraph(preprocess, core, Postprocess(SIZE, torch.from_numpy(weights))).eval()
    path = tmp_path_factory.mktemp("export") / "model.onnx"
    export_onnx(graph, (H, W), path)
    holdout = np.stack([ok_crop(seed) for seed in range(100, 108)])
    return Trained(graph, path, holdout, settings)


def run_onnx(path: Path, crop: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    amap, score = session.run(["anomaly_map", "score"], {"crop": crop[None]})
    return amap, score


def test_memory_bank_is_a_bounded_coreset(trained: Trained) -> None:
    bank = trained.graph.core.bank

    assert bank.shape == (trained.settings.coreset_max, 40 + 112)
    assert torch.unique(bank, dim=0).shape[0] == bank.shape[0]


def test_painted_defect_scores_clearly_above_held_out_ok(trained: Trained) -> None:
    ok_scores, _ = torch_scores(trained.graph, trained.holdout)
    defect_score, defect_map = torch_scores(trained.graph, defect_crop()[None])

    assert defect_score[0] > 2.0 * ok_scores.max()
    peak_y, peak_x = np.unravel_index(np.argmax(defect_map[0]), defect_map[0].shape)
    expected_x, expected_y = BLOB_CENTRE[0] * SIZE / W, BLOB_CENTRE[1] * SIZE / H
    assert abs(peak_x - expected_x) < 16 and abs(peak_y - expected_y) < 16


def test_onnx_reproduces_torch_scores(trained: Trained) -> None:
    crops = np.concatenate([trained.holdout, defect_crop()[None]])

    worst = check_parity(trained.graph, trained.onnx_path, crops, trained.settings.parity_tolerance)

    assert worst <= trained.settings.parity_tolerance
    expected_scores, expected_maps = torch_scores(trained.graph, crops[-1:])
    amap, score = run_onnx(trained.onnx_path, crops[-1])
    assert score[0] == pytest.approx(expected_scores[0], rel=1e-4)
    np.testing.assert_allclose(amap[0], expected_maps[0], rtol=1e-3, atol=1e-3)


def test_onnx_interface_is_the_bundle_contract(trained: Trained) -> None:
    session = ort.InferenceSession(str(trained.onnx_path), providers=["CPUExecutionProvider"])

    (crop_input,) = session.get_inputs()
    outputs = {o.name: o for o in session.get_outputs()}
    assert (crop_input.name, crop_input.type, crop_input.shape) == (
        "crop",
        "tensor(uint8)",
        [1, H, W, 3],
    )
    assert list(outputs) == ["anomaly_map", "score"]
    amap, score = run_onnx(trained.onnx_path, trained.holdout[0])
    assert amap.shape == (1, SIZE, SIZE) and amap.dtype == np.float32
    assert score.shape == (1,) and score[0] == pytest.approx(float(amap.max()), rel=1e-6)


def test_parity_check_refuses_a_model_that_differs(trained: Trained) -> None:
    other = AnomalyGraph(
        trained.graph.preprocess,
        trained.graph.core,
        Postprocess(SIZE, torch.full((SIZE, SIZE), 1.5)),
    ).eval()

    with pytest.raises(ExportError, match="differ from torch") as error:
        check_parity(other, trained.onnx_path, trained.holdout[:2], 1e-3)

    assert str(trained.onnx_path) in str(error.value)


def test_gray_preprocess_replicates_bt601_luma_into_three_channels() -> None:
    bgr = (10, 100, 200)
    crop = torch.tensor(bgr, dtype=torch.uint8).view(1, 1, 1, 3).expand(1, H, W, 3).contiguous()
    mean, std = (0.4, 0.5, 0.6), (0.2, 0.25, 0.3)

    gray = Preprocess(SIZE, "gray", mean, std)(crop)
    rgb = Preprocess(SIZE, "rgb", mean, std)(crop)

    assert gray.shape == rgb.shape == (1, 3, SIZE, SIZE)
    luma = (0.114 * 10 + 0.587 * 100 + 0.299 * 200) / 255
    for channel in range(3):
        expected = (luma - mean[channel]) / std[channel]
        assert torch.allclose(gray[0, channel], torch.tensor(expected), atol=1e-5)
        red_first = bgr[2 - channel] / 255  # rgb mode feeds R, G, B
        assert torch.allclose(
            rgb[0, channel], torch.tensor((red_first - mean[channel]) / std[channel]), atol=1e-5
        )


def test_gray_preprocess_gives_equal_channels_for_a_coloured_crop() -> None:
    textured = torch.from_numpy(ok_crop(5)[None])
    gray = Preprocess(SIZE, "gray", (0.498,) * 3, (0.502,) * 3)

    with torch.inference_mode():
        out = gray(textured)

    assert torch.equal(out[:, 0], out[:, 1]) and torch.equal(out[:, 1], out[:, 2])
