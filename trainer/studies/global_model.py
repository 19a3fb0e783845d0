"""One global model over every connector against one model per connector, on the same tests.

The global model goes through the ordinary pipeline, trained on one folder that pools every
connector's crops, each resized to the model's input size (a per-connector graph resizes its
crop to that same size inside the model). It has one threshold and no ROI. Each connector's
test set, resized the same way, is then scored by it; the per-connector rows are those of the
connectors' own models on their (unresized) test sets.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2

from edge_agent.inspect.imaging import read_image_file
from trainer.datasets import list_images, load_connector_data
from trainer.evaluation.scoring import evaluate_bundle
from trainer.progress import bar
from trainer.settings import TrainingSettings
from trainer.synth.station import write_png
from trainer.train_connector import REPORTED_METRICS, reported_metrics, train_connector

SPLITS = ("train/ok", "val/ok", "val/ko", "test/ok", "test/ko")
COLUMNS = ("model", "connector", *REPORTED_METRICS, "error")
POOLED = "all-connectors"


def resized_connector(source: Path, out: Path, size: int) -> Path:
    """A copy of a connector folder with every crop (and KO mask) resized to size x size."""
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
        for path in list_images(source / split):
            crop = cv2.resize(read_image_file(path), (size, size), interpolation=cv2.INTER_AREA)
            write_png(out / split / f"{path.stem}.png", crop)
    (out / "test" / "ko_masks").mkdir(exist_ok=True)
    for path in sorted((source / "test" / "ko_masks").glob("*.png")):
        mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if mask is None:
            raise OSError(f"{path}: not a readable mask")
        resized = cv2.resize(mask, (size, size), interpolation=cv2.INTER_NEAREST)
        write_png(out / "test" / "ko_masks" / path.name, resized)
    return out


def pool(connectors: list[Path], out: Path) -> Path:
    """One folder (symlinks) holding every connector's crops, named `<connector>-<file>`."""
    for folder in connectors:
        for split in (*SPLITS, "test/ko_masks"):
            (out / split).mkdir(parents=True, exist_ok=True)
            for path in sorted((folder / split).glob("*.png")):
                (out / split / f"{folder.name}-{path.name}").symlink_to(path.resolve())
    return out


def global_rows(folders: list[Path], out: Path, settings: TrainingSettings) -> list[dict]:
    """Train the global model on `folders` (clean connector crops) and score each connector."""
    shutil.rmtree(out, ignore_errors=True)
    size = settings.input_size
    rows = []
    with bar(len(folders) * 2 + 1, "global model") as progress:
        resized = []
        for folder in folders:
            resized.append(resized_connector(folder, out / "data" / folder.name, size))
            progress.update()
        pooled = pool(resized, out / "data" / POOLED)
        outcome = train_connector(pooled, out / "models", settings, connector=POOLED)
        rows.append({"model": "global", "connector": POOLED, **reported_metrics(outcome.metrics)})
        progress.update()
        for folder in resized:
            data = load_connector_data(folder, settings.holdout_fraction)
            report = out / "reports" / folder.name
            metrics = evaluate_bundle(outcome.bundle_dir, data, report, {"data": str(folder)})
            rows.append({"model": "global", "connector": folder.name, **reported_metrics(metrics)})
            progress.update()
    return rows
