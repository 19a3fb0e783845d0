"""What a bundle costs at the line (size on disk, onnxruntime time per crop), and the CPU a
timing is read beside."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from edge_agent.inspect.scoring import ConnectorModel
from trainer.retrain.dataset import CROPS_DIR

NOT_DEPLOYED = ("report", CROPS_DIR)  # what the agent never loads: reports, the training crops
# The CPU features onnxruntime's convolution and matmul kernels dispatch on: the same graph
# runs at very different speeds with and without them, so timings are read beside them.
KERNEL_FEATURES = ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_tile")


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


def machine_facts(cpuinfo: Path = Path("/proc/cpuinfo")) -> dict:
    """The CPUs this process may use, their model and the kernel features they offer."""
    model, flags = "unknown", set()
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name":
                model = value.strip()
            elif key.strip() == "flags":
                flags = set(value.split())
            if flags and model != "unknown":
                break
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "cpu": model,
        "kernel_features": [f for f in KERNEL_FEATURES if f in flags],
    }
