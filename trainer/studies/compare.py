"""Detector comparison: every method trained on every connector, one row of metrics each.

Each (method, connector) is trained by the ordinary pipeline into `OUT/models/<method>/`;
its row comes from the installed bundle: the report's metrics, the false-reject rate at full
KO recall recomputed from `report/scores.csv`, onnxruntime ms per crop on a real test crop
and the bundle's size. A failing pair gets a row with its error and the others go on.
"""

from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np
import structlog

from edge_agent.contracts.config import ConfigError
from trainer.datasets import DataError, list_images, load_crops
from trainer.detectors import DETECTORS
from trainer.evaluation.footprint import bundle_mb, time_scoring
from trainer.evaluation.tables import means_with_ko, write_tables
from trainer.progress import bar
from trainer.settings import TrainingSettings
from trainer.train_all import connector_folders, rois_for
from trainer.train_connector import train_connector

log = structlog.get_logger()

COLUMNS = (
    "method", "connector", "image_auroc", "image_aupr", "frr_at_full_recall",
    "false_reject_rate", "recall", "pixel_auroc", "pro", "train_seconds",
    "ms_per_crop", "bundle_mb", "version", "error",
)  # fmt: skip
NUMERIC = COLUMNS[2:12]
REPORT_KEYS = ("image_auroc", "image_aupr", "false_reject_rate", "recall", "pixel_auroc", "pro")
MEAN_LABEL = "mean (with KO)"


def parse_methods(text: str) -> list[str]:
    """Comma-separated method names, each one of `DETECTORS`; a ConfigError names the allowed."""
    methods = [name.strip() for name in text.split(",") if name.strip()]
    allowed = ", ".join(sorted(DETECTORS))
    unknown = [name for name in methods if name not in DETECTORS]
    if unknown or not methods:
        got = ", ".join(map(repr, unknown)) or "none"
        raise ConfigError(f"--methods: unknown method {got}; allowed: {allowed}")
    return list(dict.fromkeys(methods))


def select_connectors(data: Path, names: str | None) -> list[Path]:
    """The data set's connector folders, or only those named (comma-separated)."""
    folders = connector_folders(data)
    if not names:
        return folders
    wanted = [name.strip() for name in names.split(",") if name.strip()]
    by_name = {folder.name: folder for folder in folders}
    missing = [name for name in wanted if name not in by_name]
    if missing:
        raise DataError(
            f"{data}: no connector folder {', '.join(missing)}; found: {', '.join(by_name)}"
        )
    return [by_name[name] for name in dict.fromkeys(wanted)]


def frr_at_full_recall(scores_csv: Path) -> float | None:
    """Fraction of test OK scores >= the lowest test KO score; None without test KO (or OK)."""
    with scores_csv.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ok = np.array([float(r["score"]) for r in rows if r["label"] == "OK"])
    ko = [float(r["score"]) for r in rows if r["label"] == "KO"]
    if not ko or not len(ok):
        return None
    return float(np.mean(ok >= min(ko)))


def measure_bundle(bundle: Path, data_dir: Path, runs: int) -> dict:
    """A bundle's row values: report metrics, FRR at full recall, ms per real crop, MB."""
    report = bundle / "report"
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    crop_path = (list_images(data_dir / "test" / "ok") or list_images(data_dir / "test" / "ko"))[0]
    crop = load_crops([crop_path]).images[0]
    times = time_scoring(bundle, crop, threads=1, runs=runs)
    return {
        **{key: metrics.get(key) for key in REPORT_KEYS},
        "frr_at_full_recall": frr_at_full_recall(report / "scores.csv"),
        "train_seconds": metrics.get("train_seconds"),
        "threshold_mode": metrics.get("threshold_mode"),
        "ms_per_crop": round(float(np.median(times)), 3),
        "bundle_mb": bundle_mb(bundle),
    }


def method_settings(base: TrainingSettings, method: str) -> TrainingSettings:
    """The base [training] settings with `method` set (validated)."""
    return TrainingSettings.model_validate({**base.model_dump(), "method": method})


def compare(
    folders: list[Path], out: Path, base: TrainingSettings, methods: list[str], runs: int = 50
) -> list[dict]:
    """Train and measure every (method, connector); one row each, errors recorded per row."""
    rois = rois_for(base)
    pairs = [(method, folder) for method in methods for folder in folders]
    rows = []
    with bar(len(pairs), "compare") as progress:
        for step, (method, folder) in enumerate(pairs, 1):
            row: dict = {"method": method, "connector": folder.name}
            log.info("comparing", method=method, connector=folder.name, step=f"{step}/{len(pairs)}")
            started = time.perf_counter()
            try:
                outcome = train_connector(
                    folder,
                    out / "models" / method,
                    method_settings(base, method),
                    roi=rois.get(folder.name),
                )
                row["version"] = outcome.version
                row |= measure_bundle(outcome.bundle_dir, folder, runs)
            except Exception as exc:  # one failing pair must not stop the rest
                error = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log.error("pair failed", method=method, connector=folder.name, error=error)
                row["error"] = error
            log.info(
                "compared",
                method=method,
                connector=folder.name,
                seconds=round(time.perf_counter() - started, 1),
                ok=not row.get("error"),
            )
            rows.append(row)
            progress.update()
    return rows


def write_comparison(out: Path, rows: list[dict]) -> str:
    """Write OUT/compare.md (rows + means) and OUT/compare.csv (rows); return the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    means = means_with_ko(rows, ("method",), NUMERIC, {"connector": MEAN_LABEL})
    return write_tables(out / "compare.md", out / "compare.csv", rows, COLUMNS, means)
