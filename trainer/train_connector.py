"""Train one connector end to end: data -> detector -> calibration -> checked ONNX bundle.

The bundle is written in a hidden staging folder and renamed into place only when complete,
so an interrupted run leaves no partial version behind.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import structlog
import torch

from edge_agent import __version__
from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.bundle import (
    MANIFEST_FILE,
    MODEL_FILE,
    Calibration,
    InputSpec,
    Manifest,
    TrainingInfo,
    activate,
    connector_dir,
    next_version,
    publish_bundle,
    sha256_file,
)
from edge_agent.contracts.clock import utc_now
from edge_agent.contracts.config import ConfigError
from edge_agent.contracts.names import check_connector_id
from edge_agent.inspect.scoring import ConnectorModel
from trainer.calibration import calibrate
from trainer.datasets import (
    ConnectorData,
    data_fingerprint,
    load_connector_data,
    require_test_split,
)
from trainer.detectors import CROSS_FITTED, DETECTORS
from trainer.detectors.components.backbones import build_backbone
from trainer.evaluation.scoring import evaluate_bundle
from trainer.evaluation.synthetic_defects import synthetic_metrics
from trainer.export import check_parity, export_onnx, onnx_scores
from trainer.graph import AnomalyGraph, Postprocess, Preprocess
from trainer.input_side import choose_input_side, scale_roi, scaled_bank
from trainer.masks import RoiError, clamped_roi, mask_id, roi_mask, variance_mask
from trainer.quantize import quantize_convs
from trainer.retrain.dataset import write_bundle_record
from trainer.settings import TrainingSettings

log = structlog.get_logger()

WEIGHT_MASK_FILE = "weight_mask.npy"
STAGING_PREFIX = ".staging-"
REPORTED_METRICS = ("image_auroc", "image_aupr", "false_reject_rate", "recall", "pixel_auroc")


def reported_metrics(metrics: dict) -> dict:
    """The metrics a summary row shows, `None` where a data set has none (e.g. no test KO)."""
    return {key: metrics.get(key) for key in REPORTED_METRICS}


@dataclass
class TrainOutcome:
    connector: str
    version: str
    bundle_dir: Path
    metrics: dict
    manifest: Manifest


def preprocess_all(preprocess: Preprocess, crops: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 crops -> (N, 3, S, S) model inputs, through the exported maths."""
    with torch.inference_mode():
        return torch.cat([preprocess(torch.from_numpy(c[None])) for c in crops])


def model_roi(
    roi: tuple | None, settings: TrainingSettings, side: int, connector: str
) -> tuple | None:
    """The connector's ROI, checked in the `input_size` frame it is written in, at `side`."""
    if roi is None:
        return None
    try:
        frame = settings.input_size
        return scale_roi(clamped_roi(roi, frame, connector), frame, side)
    except RoiError as exc:  # name the file to fix, as every other input error does
        raise RoiError(f"{settings.roi_file or 'ROI'}: {exc}") from None


def build_weight_mask(
    inputs: torch.Tensor, settings: TrainingSettings, roi: tuple | None, connector: str
) -> np.ndarray:
    """The ROI mask when one is given for this connector (checked by `model_roi`), else
    `settings.mask`."""
    low, high = settings.mask_min_weight, settings.mask_max_weight
    if roi is not None:
        return roi_mask(roi, settings.input_size, low, high, connector)
    if settings.mask == "variance":
        return variance_mask(inputs.mean(dim=1).numpy(), low, high)
    return np.ones((settings.input_size, settings.input_size), np.float32)


def write_model(
    graph: AnomalyGraph,
    path: Path,
    train_crops: np.ndarray,
    parity_crops: np.ndarray,
    settings: TrainingSettings,
) -> dict[str, float | int]:
    """Export `graph` to `path`, check it against torch, then quantise what its core allows.

    Returns what the manifest records: the float export's parity error and, when quantised,
    how many convolutions run in int8 and the largest score change that caused.
    """
    export_onnx(graph, parity_crops.shape[1:3], path)
    parity = check_parity(graph, path, parity_crops, settings.parity_tolerance)
    written: dict[str, float | int] = {"parity_max_relative_error": parity}
    modules = getattr(graph.core, "int8_modules", ()) if settings.int8 else ()
    if modules:
        float_scores = onnx_scores(path, parity_crops)
        prefixes = tuple(f"core.{name}." for name in modules)
        written["int8_convs"] = quantize_convs(path, train_crops, prefixes)
        int8_scores = onnx_scores(path, parity_crops)
        # Absolute, in raw score units (as calibration.raw_threshold): OK scores sit near 0 for
        # some detectors, where a relative change says little.
        written["int8_max_score_change"] = float(np.max(np.abs(int8_scores - float_scores)))
    return written


def cross_fit_scores(
    inputs: torch.Tensor,
    data: ConnectorData,
    backbone: torch.nn.Module,
    graph: AnomalyGraph,
    settings: TrainingSettings,
    work: Path,
) -> np.ndarray:
    """Out-of-fold OK scores: a model fitted on each half of the training set scores the other.

    Each half-model is exported (and quantised) as the real one is, so the scores are those of
    the model the agent would run.
    """
    crops = data.train.images
    folds = np.arange(len(inputs)) % 2
    scores = []
    for fold in (0, 1):
        core = DETECTORS[settings.method](inputs[folds != fold], backbone, settings)
        half = AnomalyGraph(graph.preprocess, core, graph.postprocess)
        path = work / f"cross-fit-{fold}.onnx"
        write_model(half, path, crops[folds != fold], data.holdout_ok.images[:8], settings)
        scores.append(onnx_scores(path, crops[folds == fold]))
        path.unlink()
    return np.concatenate(scores)


def remove_stale_staging(models_root: Path, connector: str) -> None:
    """Clear staging folders that an interrupted run of this connector left behind."""
    root = connector_dir(models_root, connector)
    for stale in root.glob(f"{STAGING_PREFIX}*") if root.is_dir() else []:
        shutil.rmtree(stale, ignore_errors=True)


@dataclass
class Fitted:
    """A detector fitted on a connector's training crops, as the exported graph runs it."""

    inputs: torch.Tensor
    backbone: torch.nn.Module
    backbone_info: Any
    weights: np.ndarray
    graph: AnomalyGraph


def fit(
    data: ConnectorData, settings: TrainingSettings, roi: tuple | None, connector: str
) -> Fitted:
    """Backbone, preprocessing, weight mask and the method's core, fitted on the training crops."""
    if settings.method not in DETECTORS:
        raise ValueError(f"unknown method {settings.method!r}; known: {sorted(DETECTORS)}")
    torch.manual_seed(settings.seed)
    log.info("training", connector=connector, n_train=len(data.train), method=settings.method)
    backbone, backbone_info = build_backbone(
        settings.backbone, settings.input_size, settings.backbone_weights
    )
    preprocess = Preprocess(
        settings.input_size, settings.color_mode, backbone_info.mean, backbone_info.std
    )
    inputs = preprocess_all(preprocess, data.train.images)
    weights = build_weight_mask(inputs, settings, roi, connector)
    core = DETECTORS[settings.method](inputs, backbone, settings)
    graph = AnomalyGraph(
        preprocess, core, Postprocess(settings.input_size, torch.from_numpy(weights))
    )
    return Fitted(inputs, backbone, backbone_info, weights, graph)


def calibrate_model(
    model_path: Path, data: ConnectorData, fitted: Fitted, settings: TrainingSettings
) -> Calibration:
    """The threshold, set on the scores of the file the agent will run; without KO the OK tail
    alone sets it, widened by out-of-fold scores where a fit is cheap."""
    ok_scores = onnx_scores(model_path, data.holdout_ok.images)
    ko_scores = onnx_scores(model_path, data.holdout_ko.images)
    extra = (
        cross_fit_scores(
            fitted.inputs, data, fitted.backbone, fitted.graph, settings, model_path.parent
        )
        if not len(ko_scores) and settings.method in CROSS_FITTED
        else None
    )
    return calibrate(
        ok_scores,
        ko_scores,
        settings.target_false_reject,
        cross_fit=extra,
        ok_only_margin=settings.ok_only_margin,
        ko_side=settings.ko_side,
        ok_only_spread=settings.ok_only_spread,
        ok_only_confidence=settings.ok_only_confidence,
    )


def train_connector(
    data_dir: Path,
    models_root: Path,
    settings: TrainingSettings,
    *,
    connector: str | None = None,
    roi: tuple[int, int, int, int] | None = None,
    activate_bundle: bool = True,
    version: str | None = None,
    record_sets: bool = True,
) -> TrainOutcome:
    """Train, calibrate, export, check and install one connector's model (`version` or the next).

    `record_sets` writes the training and held-out sets into the bundle (with their crops), for
    retraining to continue from; the retraining job records its own sets instead."""
    started = time.perf_counter()
    data = load_connector_data(Path(data_dir), settings.holdout_fraction)
    require_test_split(data, Path(data_dir))
    connector = connector or data.name
    try:
        check_connector_id(connector)  # it names the bundle's folder and its MQTT topics
    except ValueError as exc:
        raise ConfigError(f"{data_dir}: {exc}") from None
    chosen = choose_input_side(data.crop_size, settings.input_size, settings.input_size_max)
    bank = scaled_bank(settings.coreset_max, settings.input_size, chosen.side)
    log.info(
        "input side", connector=connector, side=chosen.side, bank_at_most=bank, reason=chosen.reason
    )
    roi = model_roi(roi, settings, chosen.side, connector)
    settings = settings.model_copy(update={"input_size": chosen.side, "coreset_max": bank})
    fitted = fit(data, settings, roi, connector)
    bank_reason = getattr(fitted.graph.core, "reason", "")  # PatchCore: the bank's size and why
    side_reason = chosen.reason + (f"; {bank_reason}" if bank_reason else "")
    models_root = Path(models_root)
    remove_stale_staging(models_root, connector)
    version = version or next_version(models_root, connector)
    staging = connector_dir(models_root, connector) / f"{STAGING_PREFIX}{version}-{os.getpid()}"
    staging.mkdir(parents=True)
    try:
        manifest, metrics = _stage_bundle(
            staging, data, settings, fitted, connector, version, started, side_reason
        )
        if record_sets:
            write_bundle_record(
                staging, connector, Path(data_dir), data.train, data.holdout_ok, data.holdout_ko
            )
        bundle_dir = publish_bundle(staging, models_root, connector, version)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    if activate_bundle:
        activate(models_root, connector, version)
    log.info("installed", connector=connector, version=version, active=activate_bundle)
    return TrainOutcome(connector, version, bundle_dir, metrics, manifest)


def _stage_bundle(
    staging: Path,
    data: ConnectorData,
    settings: TrainingSettings,
    fitted: Fitted,
    connector: str,
    version: str,
    started: float,
    side_reason: str,
) -> tuple[Manifest, dict]:
    """Export, calibrate and evaluate into `staging`; the manifest, metrics included, is written
    once at the end (the evaluation opens the staged model as the agent would)."""
    model_path = staging / MODEL_FILE
    written = write_model(
        fitted.graph, model_path, data.train.images, data.holdout_ok.images[:8], settings
    )
    calibration = calibrate_model(model_path, data, fitted, settings)
    train_seconds = time.perf_counter() - started
    log.info(
        "calibrated", connector=connector, mode=calibration.mode, seconds=round(train_seconds, 1)
    )
    np.save(staging / WEIGHT_MASK_FILE, fitted.weights, allow_pickle=False)
    manifest = _manifest(
        data, settings, calibration, fitted, written, model_path, connector, version, train_seconds
    )
    model = ConnectorModel.open(staging, manifest, threads=2)
    extra = _report_extra(data, manifest, train_seconds, side_reason)
    if len(data.test_ok):
        extra |= synthetic_metrics(staging, data.test_ok.images, staging / "report", model)
    metrics = evaluate_bundle(staging, data, staging / "report", extra, model)
    manifest.metrics = {
        k: metrics.get(k) for k in (*REPORTED_METRICS, "synthetic_recall", "n_test_ok", "n_test_ko")
    }
    write_json_atomic(staging / MANIFEST_FILE, manifest.dump())
    return manifest, metrics


def _manifest(
    data: ConnectorData,
    settings: TrainingSettings,
    calibration: Calibration,
    fitted: Fitted,
    written: dict[str, float | int],
    model_path: Path,
    connector: str,
    version: str,
    train_seconds: float,
) -> Manifest:
    """What the bundle states about its model."""
    height, width = data.crop_size
    params = settings.model_dump(mode="json", exclude={"roi_file"})
    params["backbone_weights_sha256"] = fitted.backbone_info.weights_sha256
    params.update(written)
    return Manifest(
        connector=connector,
        version=version,
        method=settings.method,
        backbone=settings.backbone,
        model_input_size=settings.input_size,
        color_mode=settings.color_mode,
        input=InputSpec(height=height, width=width),
        roi_mask_id=mask_id(fitted.weights),
        calibration=calibration,
        training=TrainingInfo(
            data_sha256=data_fingerprint(data.train.paths),
            n_train=len(data.train),
            n_holdout_ok=len(data.holdout_ok),
            n_holdout_ko=len(data.holdout_ko),
            seconds=round(train_seconds, 2),
            params=params,
        ),
        onnx_sha256=sha256_file(model_path),
        parity_tolerance=settings.parity_tolerance,
        created_at=utc_now(),
        software={
            "edge-inspect": __version__,
            "torch": torch.__version__,
            "onnx": onnx.__version__,
        },
    )


def _report_extra(
    data: ConnectorData, manifest: Manifest, train_seconds: float, side_reason: str
) -> dict:
    calibration = manifest.calibration
    return {
        "connector": manifest.connector,
        "version": manifest.version,
        "method": manifest.method,
        "input_size": manifest.model_input_size,
        "input_size_reason": side_reason,
        "n_train": len(data.train),
        "train_seconds": round(train_seconds, 2),
        "threshold_mode": calibration.mode,
        "calibration": calibration.model_dump(),
        "holdout_source": data.holdout_source,
    }
