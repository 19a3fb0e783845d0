"""`edge-inspect train-all`: one model per connector of a crop data set, then a summary table."""

from __future__ import annotations

import argparse
from pathlib import Path

import structlog

from trainer.commands.options import (
    USER_ERRORS,
    add_training_arguments,
    rois_for,
    run_guarded,
    training_settings,
)
from trainer.datasets import DataError
from trainer.evaluation.tables import write_tables
from trainer.export import ExportError
from trainer.train_connector import train_connector

log = structlog.get_logger()

COLUMNS = (
    "connector", "n_train", "n_test_ko", "image_auroc", "threshold_mode",
    "false_reject_rate", "recall", "train_seconds", "version", "error",
)  # fmt: skip


def connector_folders(data: Path) -> list[Path]:
    """Connector folders of a crop data set: those with a train/ok folder, by name."""
    if not Path(data).is_dir():
        raise DataError(f"{data}: crop data folder not found")
    folders = sorted(p for p in Path(data).iterdir() if (p / "train" / "ok").is_dir())
    if not folders:
        raise DataError(f"{data}: no connector folders with train/ok inside")
    return folders


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


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True, help="DIR/crops")
    parser.add_argument("--out", type=Path, required=True, help="models folder")
    add_training_arguments(parser)


def run(args: argparse.Namespace) -> int:
    def body() -> int:
        rows = train_all(args.data, args.out, training_settings(args), not args.no_activate)
        print(write_summary(args.out, rows))
        return 1 if any(row.get("error") for row in rows) else 0

    return run_guarded("edge-inspect train-all", body)
