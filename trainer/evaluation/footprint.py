"""What a bundle costs at the line: its size on disk and onnxruntime time per crop."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from edge_agent.inspect.scoring import ConnectorModel
from trainer.retrain.dataset import CROPS_DIR

NOT_DEPLOYED = ("report", CROPS_DIR)  # what the agent never loads: reports, the training crops


def bundle_mb(bundle: Path) -> float:
    """Size of a bundle's files in MB, its report and training crops excluded."""
    size = sum(
        f.stat().st_size
        for f in bundle.rglob("*")
        if f.is_file() and not set(NOT_DEPLOYED) & set(f.relative_to(bundle).parts)
    )
    return round(size / 1e6, 2)


def time_scoring(bundle: Path, crop: np.ndarray, threads: int, runs: int = 200) -> list[float]:
    """Milliseconds of each of `runs` onnxruntime scorings of `crop` by the bundle's model."""
    model = ConnectorModel.load(bundle, threads)
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        model.score(crop)
        times.append((time.perf_counter() - started) * 1000)
    return times
