"""Unique good boards of the synthetic station, generated ahead of streaming and kept.

The agent files a second input of the same content as a repeat, so every board dropped must
be a new photo. Boards are drawn from seeds of their own (never those of the station's
train/val/test boards), rendered by a pool of processes into `<folder>/gNNNNN.jpg` with
their reference-to-photo affine in `truth.json` (saved with each progress line, so an
interrupted run keeps what it made); a later run reuses and extends the folder.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge_agent.contracts.atomic import write_json_atomic
from trainer.synth.scene import Station
from trainer.synth.station import JPEG_QUALITY

SEED_STREAM = 0xD21F7  # the board seeds are [station seed, SEED_STREAM, index]
TRUTH_FILE = "truth.json"


@dataclass(frozen=True)
class SuppliedBoard:
    """One generated good board: its JPEG file and where the reference lies in it."""

    image: Path
    truth: np.ndarray


def board_name(index: int) -> str:
    return f"g{index:05d}.jpg"


_station: Station | None = None
_station_seed = 0


def _start_worker(seed: int) -> None:
    global _station, _station_seed
    cv2.setNumThreads(1)  # the processes share the cores
    _station, _station_seed = Station.build(seed), seed


def _render(job: tuple[Path, int]) -> tuple[int, list[list[float]]]:
    """Render board `index` into `folder`; its index and truth affine."""
    folder, index = job
    assert _station is not None, "pool worker not initialised"
    photo = _station.photo(np.random.default_rng([_station_seed, SEED_STREAM, index]), {})
    ok, jpeg = cv2.imencode(".jpg", photo.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise RuntimeError(f"board {index}: JPEG encoding failed")
    (folder / board_name(index)).write_bytes(jpeg.tobytes())
    return index, photo.truth.tolist()


def supply_boards(
    folder: Path, seed: int, count: int, workers: int = 2, every_s: float = 10.0
) -> list[SuppliedBoard]:
    """`count` unique good boards of the station of `seed`, generating the missing ones;
    a progress line every `every_s` seconds."""
    folder.mkdir(parents=True, exist_ok=True)
    truth_path = folder / TRUTH_FILE
    known = json.loads(truth_path.read_text()) if truth_path.is_file() else {}
    if known and known.get("seed") != seed:
        raise ValueError(f"{folder}: boards of station seed {known.get('seed')}, not {seed}")
    truths: dict[str, list[list[float]]] = known.get("truth", {})
    missing = [
        (folder, i)
        for i in range(count)
        if str(i) not in truths or not (folder / board_name(i)).is_file()
    ]
    if missing:
        print(f"generating {len(missing)} good boards into {folder} ({workers} processes)")
        started = last = time.monotonic()
        context = multiprocessing.get_context("spawn")  # OpenCV's pool does not survive fork
        processes = max(1, min(workers, os.cpu_count() or 1))
        with context.Pool(processes, _start_worker, (seed,)) as pool:
            for done, (index, truth) in enumerate(pool.imap_unordered(_render, missing, 8), 1):
                truths[str(index)] = truth
                now = time.monotonic()
                if now - last >= every_s or done == len(missing):
                    last = now
                    write_json_atomic(truth_path, {"seed": seed, "truth": truths})  # kept if cut
                    rate = done / max(now - started, 1e-9)
                    print(
                        f"boards: {done}/{len(missing)} generated, {rate:.1f}/s, "
                        f"{(len(missing) - done) / max(rate, 1e-9):.0f} s left",
                        flush=True,
                    )
    return [
        SuppliedBoard(folder / board_name(i), np.array(truths[str(i)], np.float64))
        for i in range(count)
    ]
