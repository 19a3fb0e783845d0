"""Tiny real ONNX anomaly models and installed bundles, built with torch for the agent's tests."""

from __future__ import annotations

import functools
import hashlib
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edge_agent.contracts.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    Calibration,
    InputSpec,
    Manifest,
    TrainingInfo,
    activate,
    publish_bundle,
)
from edge_agent.contracts.clock import utc_now


class TemplateDistance(torch.nn.Module):
    """Map = per-pixel mean |crop - template| over channels, resized to SxS; score = its max."""

    def __init__(self, template: np.ndarray, size: int) -> None:
        super().__init__()
        self.register_buffer("template", torch.as_tensor(template, dtype=torch.float32))
        self.size = size

    def forward(self, crop: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        distance = (crop.float() - self.template).abs().mean(dim=3, keepdim=True)
        amap = F.interpolate(
            distance.permute(0, 3, 1, 2), size=(self.size, self.size), mode="bilinear"
        ).squeeze(1)
        return amap, amap.amax(dim=(1, 2))


def model_bytes(template: np.ndarray, size: int) -> bytes:
    """The exported graph for a (H, W, 3) template; cached, exports cost seconds."""
    template = np.asarray(template, np.float32)
    return _export(template.tobytes(), template.shape, size)


@functools.lru_cache(maxsize=32)
def _export(template: bytes, shape: tuple[int, ...], size: int) -> bytes:
    array = np.frombuffer(template, np.float32).reshape(shape).copy()
    module = TemplateDistance(array, size).eval()
    crop = torch.zeros((1, shape[0], shape[1], 3), dtype=torch.uint8)
    with tempfile.TemporaryDirectory() as folder, warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        path = Path(folder) / MODEL_FILE
        torch.onnx.export(
            module,
            (crop,),
            path,
            dynamo=True,
            external_data=False,
            input_names=["crop"],
            output_names=["anomaly_map", "score"],
            verbose=False,
        )
        return path.read_bytes()


def _resize_axis(length: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Source indices and weights of a half-pixel bilinear resize (torch align_corners=False)."""
    src = np.maximum((np.arange(size) + 0.5) * (length / size) - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(int), length - 1)
    high = np.minimum(low + 1, length - 1)
    return low, high, (src - low).astype(np.float64)


def expected_outputs(crop: np.ndarray, template: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """The graph's raw (map, score) recomputed in numpy."""
    distance = np.abs(crop.astype(np.float64) - template).mean(axis=2)
    y0, y1, wy = _resize_axis(distance.shape[0], size)
    x0, x1, wx = _resize_axis(distance.shape[1], size)
    rows = distance[y0] * (1 - wy)[:, None] + distance[y1] * wy[:, None]
    amap = rows[:, x0] * (1 - wx) + rows[:, x1] * wx
    return amap, float(amap.max())


def make_manifest(
    connector: str, version: str, height: int, width: int, size: int, raw_threshold: float
) -> Manifest:
    return Manifest(
        connector=connector,
        version=version,
        method="template-distance",
        backbone="none",
        model_input_size=size,
        color_mode="rgb",
        input=InputSpec(height=height, width=width),
        roi_mask_id="full",
        calibration=Calibration(
            mode="ok-only", raw_threshold=raw_threshold, n_ok=10, n_ko=0, guarantee="test"
        ),
        training=TrainingInfo(
            data_sha256="0" * 64, n_train=10, n_holdout_ok=2, n_holdout_ko=0, seconds=0.1
        ),
        onnx_sha256="",
        parity_tolerance=1e-3,
        created_at=utc_now(),
    )


def install_bundle(
    models_root: Path,
    manifest: Manifest,
    onnx: bytes,
    *,
    make_active: bool = True,
) -> Path:
    """Write model + manifest (sha256 filled in) via the bundle contract; optionally activate."""
    manifest = manifest.model_copy(update={"onnx_sha256": hashlib.sha256(onnx).hexdigest()})
    staging = Path(models_root) / f".staging-{manifest.connector}-{manifest.version}"
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    (staging / MODEL_FILE).write_bytes(onnx)
    (staging / MANIFEST_FILE).write_text(manifest.dump(), encoding="utf-8")
    final = publish_bundle(staging, models_root, manifest.connector, manifest.version)
    if make_active:
        activate(models_root, manifest.connector, manifest.version)
    return final


def install_template_model(
    models_root: Path,
    connector: str,
    version: str,
    template: np.ndarray,
    size: int,
    raw_threshold: float,
    *,
    make_active: bool = True,
) -> Path:
    """A real template-distance bundle for a crop of the template's size."""
    height, width = template.shape[:2]
    manifest = make_manifest(connector, version, height, width, size, raw_threshold)
    onnx = model_bytes(template, size)
    return install_bundle(models_root, manifest, onnx, make_active=make_active)
