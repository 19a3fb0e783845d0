"""`bench-quality`: each method on real images and on the default synthetic station, one table.

Real images: the cells of the `elpv-dataset` package (electroluminescence photographs of solar
cells, 300x300 gray, an expert's defect probability per cell; the `bench` extra installs it),
one data set per cell type (`cells`: monocrystalline, `cells-poly`: polycrystalline), each
treated as one connector: OK = probability 0, KO = probability 1 (1/3 and 2/3 left out); 200 OK
drawn with numpy's legacy seed 0 train, the other OK and every KO test. No KO is used for
training or calibration, so the threshold is the OK-only one.

A user's own folder (`--data DIR`): `DIR/train/ok`, `DIR/test/ok`, `DIR/test/ko` (optional
`DIR/test/ko_masks/<same name>`, `DIR/val/ok`, `DIR/val/ko`), one connector, images of any size:
used as it is when every image shares one size, else copied, resized to the most common size of
`train/ok`, into `OUT/data/<name>`.

Synthetic: `synth --seed 0` (default 320 boards), every connector as `train-all` sees it.
Each (data set, connector, method) is trained by the ordinary `train` pipeline and measured
from its bundle as `compare` does, plus the best recall reachable at the target false reject,
and the recall on synthetic defects pasted on its test OK, from the training report (an estimate
that needs no KO, shown beside the real recall; one example strip per row in
`OUT/<data set>/synthetic/`).
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import structlog

from edge_agent.inspect.imaging import DecodeError, read_image_file
from trainer.datasets import DataError, list_images
from trainer.evaluation.metrics import recall_at_false_reject
from trainer.evaluation.synthetic_defects import EXAMPLES_FILE, KINDS
from trainer.evaluation.tables import write_tables
from trainer.settings import TrainingSettings
from trainer.studies.compare import compare
from trainer.studies.line_days import read_scores
from trainer.synth.station import generate_station

log = structlog.get_logger()

CELL_TYPES = {"cells": "mono", "cells-poly": "poly"}
CELL_TRAIN_OK = 200
CELL_SPLIT_SEED = 0
BEST_RECALL_AT = 0.005
DATA_SETS = (*CELL_TYPES, "station", "station-mild")
DEFAULT_DATA_SETS = ("cells", "station")
USER_SPLITS = ("train/ok", "val/ok", "val/ko", "test/ok", "test/ko", "test/ko_masks")
COLUMNS = (
    "data_set", "connector", "method", "image_auroc", "image_aupr", "best_recall_at_0.5%_fr",
    "recall", "synthetic_recall", "synthetic_by_kind", "false_reject_rate", "threshold_mode",
    "train_seconds", "ms_per_crop", "bundle_mb", "error",
)  # fmt: skip

CellLoader = Callable[[], tuple[np.ndarray, np.ndarray, np.ndarray]]


def elpv_cells() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(images, defect probabilities, cell types) from the installed `elpv-dataset`."""
    try:
        from elpv_dataset.utils import load_dataset
    except ImportError:
        raise DataError(
            "the real-image set needs the `bench` extra: .venv/bin/pip install -e '.[bench]'"
        ) from None
    return load_dataset()


def cell_split(
    probabilities: np.ndarray, types: np.ndarray, cell_type: str = "mono"
) -> dict[str, np.ndarray]:
    """Indices of one cell type's train/ok, test/ok and test/ko (the split stated above)."""
    ok = np.flatnonzero((types == cell_type) & (probabilities == 0))
    ko = np.flatnonzero((types == cell_type) & (probabilities == 1))
    if len(ok) <= CELL_TRAIN_OK or not len(ko):
        raise DataError(f"{len(ok)} OK and {len(ko)} KO {cell_type} cells: too few for the split")
    np.random.seed(CELL_SPLIT_SEED)  # the legacy global generator, as the published split
    train = np.sort(np.random.choice(ok, CELL_TRAIN_OK, replace=False))
    return {"train/ok": train, "test/ok": np.setdiff1d(ok, train), "test/ko": ko}


def build_cells(root: Path, loader: CellLoader = elpv_cells, name: str = "cells") -> Path:
    """One cell type (`CELL_TYPES[name]`) in crop layout at `root/<name>` (written once; a
    complete folder is reused)."""
    folder = root / name
    done = folder / ".complete"
    if done.is_file():
        return folder
    images, probabilities, types = loader()
    split_of = cell_split(np.asarray(probabilities), np.asarray(types), CELL_TYPES[name])
    for split, indices in split_of.items():
        target = folder / split
        target.mkdir(parents=True, exist_ok=True)
        for index in indices:
            cv2.imwrite(str(target / f"cell{index:04d}.png"), images[index])
    done.touch()
    return folder


def user_data(folder: Path, copy: Path) -> Path:
    """A user's connector folder ready for training: itself, or its resized copy at `copy`
    (see above); a DataError names what is missing."""
    folder = Path(folder)
    paths = {split: list_images(folder / split) for split in USER_SPLITS}
    if not paths["train/ok"]:
        raise DataError(f"{folder / 'train' / 'ok'}: no OK training images (missing or empty)")
    if not paths["test/ok"] and not paths["test/ko"]:
        raise DataError(f"{folder / 'test'}: no test images (test/ok, test/ko) to measure on")
    sizes = {
        split: [_image_size(path) for path in found]
        for split, found in paths.items()
        if split != "test/ko_masks"
    }
    every = [size for found in sizes.values() for size in found]
    if len(set(every)) == 1:
        return folder
    target = Counter(sizes["train/ok"]).most_common(1)[0][0]
    log.info(
        "bench_quality_resizing",
        folder=str(folder),
        to=f"{target[1]}x{target[0]}",
        sizes=len(set(every)),
    )
    for split, found in paths.items():
        (copy / split).mkdir(parents=True, exist_ok=True)
        for path in found:
            flag = cv2.IMREAD_GRAYSCALE if split == "test/ko_masks" else cv2.IMREAD_UNCHANGED
            image = cv2.imread(str(path), flag)
            if image is None:
                raise DataError(f"{path}: unreadable image")
            if image.shape[:2] != target:
                nearest = split == "test/ko_masks"
                interpolation = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA
                image = cv2.resize(image, (target[1], target[0]), interpolation=interpolation)
            cv2.imwrite(str(copy / split / f"{path.stem}.png"), image)
    return copy


def _image_size(path: Path) -> tuple[int, int]:
    try:
        return read_image_file(path).shape[:2]
    except DecodeError as exc:
        raise DataError(str(exc)) from None


def user_data_sets(folders: list[Path], root: Path) -> dict[str, Path]:
    """Each `--data` folder under a unique data-set name (its folder name, numbered on a clash)."""
    named: dict[str, Path] = {}
    for folder in folders:
        # The name is also the connector id: characters the id rule refuses become '-'.
        name = re.sub(r"[^A-Za-z0-9_-]", "-", Path(folder).resolve().name)[:60] or "data"
        unique, count = name, 1
        while unique in named or unique in DATA_SETS:
            count += 1
            unique = f"{name}-{count}"
        ready = user_data(folder, root / unique)
        if ready.name != unique:  # used in place: reached under its connector id
            (root / unique).parent.mkdir(parents=True, exist_ok=True)
            (root / unique).unlink(missing_ok=True)
            (root / unique).symlink_to(ready.resolve(), target_is_directory=True)
            ready = root / unique
        named[unique] = ready
    return named


def build_station(root: Path, boards: int) -> Path:
    """The default synthetic station (seed 0) at `root/station`, generated once."""
    station = root / "station"
    if not (station / "config.toml").is_file():
        generate_station(station, seed=0, boards=boards)
    return station / "crops"


def best_recall(scores_csv: Path, rate: float = BEST_RECALL_AT) -> float | None:
    """The highest test recall any threshold reaches at `rate` false reject on the test OK
    (a bundle's `report/scores.csv`)."""
    ok, ko = read_scores(scores_csv)
    return recall_at_false_reject(ok, ko, rate) if len(ok) and len(ko) else None


def bench_quality(
    folders: dict[str, list[Path]],
    out: Path,
    base: TrainingSettings,
    methods: list[str],
    runs: int = 50,
) -> list[dict]:
    """Train and measure every (data set, connector, method); a row each."""
    rows = []
    for data_set, connectors in folders.items():
        for row in compare(connectors, out / data_set, base, methods, runs):
            bundle = out / data_set / "models" / row["method"] / row["connector"]
            if not row.get("error"):
                scores = bundle / row["version"] / "report" / "scores.csv"
                row["best_recall_at_0.5%_fr"] = best_recall(scores)
                row |= synthetic_columns(
                    bundle / row["version"],
                    out / data_set / "synthetic" / f"{row['method']}_{row['connector']}.png",
                )
            rows.append({"data_set": data_set, **row})
    return rows


def synthetic_columns(bundle: Path, examples_png: Path) -> dict:
    """The training report's recall on synthetic defects (pasted on the connector's test OK):
    overall and by kind, with its example strip copied to `examples_png`."""
    metrics = json.loads((bundle / "report" / "metrics.json").read_text(encoding="utf-8"))
    if metrics.get("synthetic_recall") is None:
        return {}
    examples_png.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(bundle / "report" / EXAMPLES_FILE, examples_png)
    by_kind = metrics["synthetic_by_kind"]
    return {
        "synthetic_recall": metrics["synthetic_recall"],
        "synthetic_by_kind": ", ".join(f"{kind} {by_kind[kind]:.2f}" for kind in KINDS),
    }


def write_quality(out: Path, rows: list[dict]) -> str:
    """OUT/quality.md and OUT/quality.csv; returns the markdown."""
    out.mkdir(parents=True, exist_ok=True)
    return write_tables(out / "quality.md", out / "quality.csv", rows, list(COLUMNS), [])
