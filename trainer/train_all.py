"""Every connector of a crop data set trained, one failing connector not stopping the others."""

from __future__ import annotations

from pathlib import Path

import structlog

from edge_agent.contracts.bundle import BundleError
from edge_agent.contracts.config import ConfigError
from trainer.calibration import CalibrationError
from trainer.datasets import DataError
from trainer.detectors.components.backbones import BackboneError
from trainer.evaluation.tables import write_tables
from trainer.export import ExportError
from trainer.masks import RoiError, load_roi_file
from trainer.settings import TrainingSettings
from trainer.train_connector import train_connector

log = structlog.get_logger()

USER_ERRORS = (ConfigError, DataError, RoiError, BackboneError, CalibrationError, BundleError)
"""Errors a user can act on (a path, a setting, the data): one line, not a traceback."""

COLUMNS = (
    "connector", "n_train", "n_test_ko", "image_auroc", "threshold_mode",
    "false_reject_rate", "recall", "synthetic_recall", "train_seconds", "version", "error",
)  # fmt: skip


def connector_folders(data: Path) -> list[Path]:
    """Connector folders of a crop data set: those with a train/ok folder, by name."""
    if not Path(data).is_dir():
        raise DataError(f"{data}: crop data folder not found")
    folders = sorted(p for p in Path(data).iterdir() if (p / "train" / "ok").is_dir())
    if not folders:
        raise DataError(f"{data}: no connector folders with train/ok inside")
    return folders


def rois_for(settings: TrainingSettings) -> dict[str, tuple[int, int, int, int]]:
    """The manual ROI of each connector named by `training.roi_file` (none without one)."""
    return load_roi_file(settings.roi_file) if settings.roi_file else {}


def train_all(data: Path, models: Path, settings, activate: bool = True) -> list[dict]:
    """Train every connector; one failing connector does not stop the others."""
    rois = rois_for(settings)
    rows = []
    for folder in connector_folders(data):
        row: dict = {"connector": folder.name}
        try:
            outcome = train_connector(
                folder, models, settings, roi=rois.get(folder.name), activate_bundle=activate
            )
            row |= {k: outcome.metrics.get(k) for k in COLUMNS if k in outcome.metrics}
            row["version"] = outcome.version
        except (*USER_ERRORS, ExportError) as exc:
            log.error("connector failed", connector=folder.name, error=str(exc))
            row["error"] = str(exc)
        rows.append(row)
    return rows


def write_summary(models: Path, rows: list[dict]) -> str:
    """Write summary.md and summary.csv next to the models; return the markdown table."""
    return write_tables(models / "summary.md", models / "summary.csv", rows, COLUMNS, [])
