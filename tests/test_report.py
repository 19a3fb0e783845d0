"""The evaluation report: every file written, every required metric present, no KO tolerated."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.evaluation.report import REQUIRED_KEYS, ScoredSample, write_report

CROP_SHAPE = (60, 48)
MAP_SIZE = 32


def _sample(rng: np.random.Generator, index: int, label: str, score: float) -> ScoredSample:
    """A crop with its map on the calibrated scale; KO crops carry a blob and its GT mask."""
    crop = rng.integers(0, 255, (*CROP_SHAPE, 3), dtype=np.uint8)
    raw = rng.random((MAP_SIZE, MAP_SIZE)).astype(np.float32) * 0.5
    mask = None
    if label == "KO":
        raw[10:20, 12:22] = score
        mask = np.zeros(CROP_SHAPE, dtype=np.uint8)
        mask[19:38, 18:33] = 255
    amap = raw.copy()
    amap[:, :4] = 0.0
    return ScoredSample(
        path=f"station/J12/{label.lower()}_{index:03d}.png",
        label=label,
        score=score,
        amap=amap,
        crop=crop,
        raw_map=raw,
        gt_mask=mask,
    )


def _samples(n_ok: int, n_ko: int) -> list[ScoredSample]:
    rng = np.random.default_rng(11)
    ok = [_sample(rng, i, "OK", float(rng.uniform(0.1, 0.95))) for i in range(n_ok)]
    ko = [_sample(rng, i, "KO", float(rng.uniform(1.05, 2.5))) for i in range(n_ko)]
    return ok + ko


def _extra() -> dict:
    return {"n_train": 120, "train_seconds": 4.2, "threshold_mode": "ok_quantile"}


def test_report_writes_every_file_and_every_required_key(tmp_path: Path) -> None:
    samples = _samples(n_ok=20, n_ko=4)
    weights = np.ones((MAP_SIZE, MAP_SIZE), dtype=np.float32)
    out = tmp_path / "report" / "J12"
    returned = write_report(out, samples, _extra(), title="J12", weight_mask=weights)

    for name in (
        "metrics.json",
        "scores.csv",
        "score_histogram.png",
        "roc_curve.png",
        "pr_curve.png",
        "raw_vs_masked.png",
        "weight_mask.png",
    ):
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == returned
    assert set(REQUIRED_KEYS) <= set(metrics)
    assert metrics["image_auroc"] == 1.0
    assert metrics["recall"] == 1.0
    assert metrics["pro"] is not None
    assert metrics["pixel_auroc"] is not None
    assert (metrics["n_train"], metrics["train_seconds"]) == (120, 4.2)
    assert metrics["threshold_mode"] == "ok_quantile"
    assert (metrics["n_test_ok"], metrics["n_test_ko"]) == (20, 4)
    assert not list(out.glob(".*.tmp"))


def test_visuals_show_the_hardest_cases_at_crop_size(tmp_path: Path) -> None:
    samples = _samples(n_ok=10, n_ko=3)
    write_report(tmp_path, samples, _extra(), title="J12", n_visuals=4)

    ok = sorted((s for s in samples if s.label == "OK"), key=lambda s: s.score)
    ko = sorted((s for s in samples if s.label == "KO"), key=lambda s: s.score)
    files = sorted(p.name for p in (tmp_path / "visuals").iterdir())
    assert len(files) == 4 * 3
    for sample in (ko[-1], ko[0], ok[-1]):
        stem = Path(sample.path).stem
        for kind in ("original", "heatmap", "overlay"):
            matches = [f for f in files if f.endswith(f"_{stem}_{kind}.png")]
            assert len(matches) == 1, (stem, kind)
            image = cv2.imread(str(tmp_path / "visuals" / matches[0]))
            assert image.shape == (*CROP_SHAPE, 3)


def test_scores_csv_keeps_the_given_order_and_predicts_at_one(tmp_path: Path) -> None:
    samples = _samples(n_ok=3, n_ko=2)
    samples[0].score = 1.0
    write_report(tmp_path, samples, _extra(), title="J12")

    with (tmp_path / "scores.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["path"] for r in rows] == [s.path for s in samples]
    assert [r["label"] for r in rows] == [s.label for s in samples]
    assert [r["predicted"] for r in rows] == ["KO", "OK", "OK", "KO", "KO"]
    assert float(rows[0]["score"]) == 1.0


def test_report_without_ko_still_writes_everything(tmp_path: Path) -> None:
    samples = _samples(n_ok=8, n_ko=0)
    metrics = write_report(tmp_path, samples, {}, title="J12")

    for name in ("score_histogram.png", "roc_curve.png", "pr_curve.png", "raw_vs_masked.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved == metrics
    assert set(REQUIRED_KEYS) <= set(saved)
    for key in ("image_auroc", "image_aupr", "f1", "recall", "pixel_auroc", "pro", "n_train"):
        assert saved[key] is None, key
    assert saved["false_reject_rate"] == 0.0
    assert not (tmp_path / "weight_mask.png").exists()


def test_rewriting_a_report_drops_the_previous_visuals(tmp_path: Path) -> None:
    write_report(tmp_path, _samples(n_ok=6, n_ko=2), _extra(), title="J12", n_visuals=4)
    write_report(tmp_path, _samples(n_ok=6, n_ko=0), _extra(), title="J12", n_visuals=2)
    assert len(list((tmp_path / "visuals").iterdir())) == 2 * 3


def test_extra_may_not_overwrite_a_computed_metric(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="image_auroc"):
        write_report(tmp_path, _samples(3, 1), {"image_auroc": 0.5}, title="J12")
    assert not (tmp_path / "metrics.json").exists()


def test_extra_numbers_land_in_json_as_plain_values_and_nan_as_null(tmp_path: Path) -> None:
    extra = _extra() | {"calibration": {"ko_margin": float("nan"), "quantile": np.float32(0.5)}}
    write_report(tmp_path, _samples(n_ok=4, n_ko=1), extra, title="J12")
    saved = json.loads((tmp_path / "metrics.json").read_text())
    assert saved["calibration"] == {"ko_margin": None, "quantile": 0.5}
