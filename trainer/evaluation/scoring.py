"""Evaluate a bundle through onnxruntime only, exactly as the agent scores, and write its report."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from edge_agent.inspect.scoring import ConnectorModel
from trainer.datasets import ConnectorData, CropSet
from trainer.evaluation.report import ScoredSample, write_report
from trainer.progress import track

WEIGHT_MASK_FILE = "weight_mask.npy"


def score_set(
    model: ConnectorModel,
    crops: CropSet,
    label: str,
    weights: np.ndarray,
    masks: list[np.ndarray | None] | None = None,
) -> list[ScoredSample]:
    """Score every crop of a set with the agent's scorer; the raw map is the unweighted one."""
    samples = []
    masks = masks or [None] * len(crops)
    for path, crop, mask in track(
        zip(crops.paths, crops.images, masks, strict=True), len(crops), f"score {label}"
    ):
        result = model.score(crop)
        samples.append(
            ScoredSample(
                path=str(path),
                label=label,
                score=result.score,
                amap=result.amap,
                crop=crop,
                raw_map=result.amap / weights,
                gt_mask=mask,
            )
        )
    return samples


def evaluate_bundle(
    bundle_dir: Path,
    data: ConnectorData,
    out_dir: Path,
    extra: dict,
    model: ConnectorModel | None = None,
) -> dict:
    """Score the test split with the bundle (`model`: the bundle already opened) and write the
    report; returns the metrics."""
    model = model or ConnectorModel.load(Path(bundle_dir), threads=2)
    weights = np.load(Path(bundle_dir) / WEIGHT_MASK_FILE, allow_pickle=False)
    samples = score_set(model, data.test_ok, "OK", weights) + score_set(
        model, data.test_ko, "KO", weights, data.test_ko_masks
    )
    title = f"{model.manifest.connector} {model.manifest.version} ({model.manifest.method})"
    return write_report(Path(out_dir), samples, extra, title=title, weight_mask=weights)
