"""What the drift monitor costs per board, measured (not asserted): run
`PYTHONPATH=. python tests/drift_cost.py`. Nine connectors and the capture, past the baseline,
on a clean stream; the monitor alone, then a journaled board (a real SQLite file) without and
with it, then the capture measures of one photo.

The monitor and the capture measures are timed twice: in a loop (warm caches), and with the
CPU's caches flushed before each board (`COLD_FLUSH_BYTES` read in between), as in the agent,
where a board's inference and the other boards pass between two visits of the monitor."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from test_drift_statistics import IMAGE, QUANTILES, VERSION

from edge_agent.comms.drift_publisher import DriftPublisher
from edge_agent.contracts.config import DriftSettings, StationConfig
from edge_agent.drift.connector_watch import ModelReference
from edge_agent.drift.monitor import DriftMonitor
from edge_agent.inspect.capture import capture_measures, reads
from edge_agent.inspect.registration import Registration, gray_level
from edge_agent.ops.telemetry import Telemetry
from edge_agent.store.journal import Journal

CONNECTORS = [f"J{n}" for n in range(1, 10)]
BOARDS = 5000
JOURNALED = 1000
COLD_BOARDS = 300
COLD_FLUSH_BYTES = 64 << 20  # twice the largest last-level cache of the machines measured


def stream(seed: int, count: int) -> list[tuple[dict, dict]]:
    rng = np.random.default_rng(seed)
    boards = []
    for n in range(count):
        scores = rng.normal(0.5, 0.12, len(CONNECTORS))
        rows = [
            {"id": c, "evaluation": "OK", "score": float(s), "model": {"version": VERSION}}
            for c, s in zip(CONNECTORS, scores, strict=True)
        ]
        capture = {
            "brightness": 120 + float(rng.normal(0, 0.5)),
            "contrast": 40 + float(rng.normal(0, 0.3)),
            "sharpness": 0.5 + float(rng.normal(0, 0.01)),
            "inliers": 0.8 + float(rng.normal(0, 0.02)),
            "residual": 0.6 + float(rng.normal(0, 0.05)),
            "offset": abs(float(rng.normal(0, 0.8))),
            "offset_x": float(rng.normal(0, 0.6)),
            "offset_y": float(rng.normal(0, 0.6)),
            "rotation": float(rng.normal(0, 0.05)),
            "scale": 1 + float(rng.normal(0, 0.0005)),
        }
        boards.append(({"result_id": f"r{n}", "connectors": rows}, capture))
    return boards


def monitor() -> DriftMonitor:
    def reference(connector: str) -> ModelReference:
        return ModelReference(VERSION, QUANTILES, 1000, 0.005)

    settings = DriftSettings()
    built = DriftMonitor(settings, reference, ("sha", IMAGE), CONNECTORS, {})
    for verdict, capture in stream(1, settings.baseline_boards + 10):
        built.board(verdict, capture)
    return built


def per_board_ms(feed, boards: list, clock=time.perf_counter) -> float:  # type: ignore[no-untyped-def]
    started = clock()
    for verdict, capture in boards:
        feed(verdict, capture)
    return (clock() - started) * 1000 / len(boards)


def cold_ms(step: Callable[[int], object], count: int = COLD_BOARDS) -> float:
    """Median thread CPU time of `step(n)`, each call after the caches were flushed."""
    flush = np.ones(COLD_FLUSH_BYTES, np.uint8)
    times = []
    for n in range(count):
        flush[::64].sum()  # one byte per cache line: every line of the buffer is read
        started = time.thread_time()
        step(n)
        times.append(time.thread_time() - started)
    return statistics.median(times) * 1000


def main() -> None:
    boards = stream(2, BOARDS)
    alone = [per_board_ms(monitor().board, boards) for _ in range(3)]
    cpu = [per_board_ms(monitor().board, boards, time.thread_time) for _ in range(3)]
    cold = monitor()
    print(
        f"monitor alone: {statistics.median(alone):.3f} ms per board wall clock, "
        f"{statistics.median(cpu):.3f} ms CPU time (median of 3 runs of {BOARDS} boards); "
        f"{cold_ms(lambda n: cold.board(*boards[n])):.3f} ms CPU time with cold caches"
    )

    # In the agent: each board's inspection transaction, without and with the drift publisher's
    # work for it (on its own thread there; its rows ride in those transactions, a state change
    # would add one commit).
    with tempfile.TemporaryDirectory() as folder:
        journal = Journal(Path(folder) / "journal.sqlite")
        journal.start_session()
        # No registry: every board's model version is the monitor's, so none is looked up.
        publisher = DriftPublisher(StationConfig(), journal, None, Telemetry(), lambda: None)  # type: ignore[arg-type]
        fed = boards[:JOURNALED]

        def inspection(verdict: dict, capture: dict) -> None:
            journal.record_inspection({**verdict, "evaluation": "OK"}, [], "p/verdict")

        def inspection_and_drift(verdict: dict, capture: dict) -> None:
            inspection(verdict, capture)
            publisher.board_now(verdict, capture)

        without, with_drift = [], []
        for run in range(3):
            publisher.monitor = monitor()
            ids = [({**v, "result_id": f"{run}a{v['result_id']}"}, c) for v, c in fed]
            without.append(per_board_ms(inspection, ids))
            ids = [({**v, "result_id": f"{run}b{v['result_id']}"}, c) for v, c in fed]
            with_drift.append(per_board_ms(inspection_and_drift, ids))
        journal.close()
    print(
        f"journaled board: {statistics.median(without):.3f} ms without the drift monitor, "
        f"{statistics.median(with_drift):.3f} ms with it (alternated, median of 3 runs)"
    )

    rng = np.random.default_rng(3)
    photos = [
        cv2.GaussianBlur(rng.integers(0, 255, (2048, 2448), dtype=np.uint8), (5, 5), 0)
        for _ in range(4)
    ]
    works = [cv2.resize(p, (640, 535), interpolation=cv2.INTER_AREA) for p in photos]
    matrix = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

    drift = DriftSettings()

    def measure(n: int) -> None:  # the registration's gray level or the focus, as the agent
        focus, light = reads(n, drift.focus_every_boards, drift.light_every_boards)
        level = gray_level(works[n % len(works)]) if light else None
        registration = Registration(
            matrix, 0.9, 200, 0.0, 0.0, gray_level=level, gray_full=photos[n % len(works)]
        )
        capture_measures(registration, (2448, 2048), focus=focus)

    started, cpu_started = time.perf_counter(), time.thread_time()
    for n in range(500):
        measure(n)
    wall, cpu = time.perf_counter() - started, time.thread_time() - cpu_started
    print(
        f"capture measures of a 2448x2048 photo: {wall * 2:.3f} ms wall clock, "
        f"{cpu * 2:.3f} ms CPU time; {cold_ms(measure):.3f} ms CPU time with cold caches "
        f"(the focus read on one photo in {drift.focus_every_boards}, the light on one in "
        f"{drift.light_every_boards}, as the agent's defaults; the gray level is taken while the "
        "working image is warm in the agent: an upper bound)"
    )


if __name__ == "__main__":
    main()
