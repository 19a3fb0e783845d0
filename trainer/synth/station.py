"""A synthetic inspection station on disk: board photos, labels, crops, KO masks and config.

DIR/config.toml                        station config (relative paths)
DIR/boards/reference.png               clean OK board at nominal pose
DIR/boards/bNNNN.jpg, labels.json      board photos and their per-connector labels
DIR/crops/<id>/<split>/ok|ko/bNNNN.png crops cut as the agent cuts them
DIR/crops/<id>/<split>/ko_masks/       ground truth of each KO crop (0/255, same name)
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np

from edge_agent.contracts.config import ConnectorSettings, RegistrationSettings
from edge_agent.inspect.cropping import crop_all
from edge_agent.inspect.imaging import decode_image
from edge_agent.inspect.registration import Registrar, RegistrationError
from trainer.progress import track
from trainer.synth.plan import DEFAULT_BOARDS, BoardPlan, plan_boards, split_sizes
from trainer.synth.scene import Station
from trainer.synth.variation import DOMAINS

JPEG_QUALITY = 92
PNG_COMPRESSION = 3
STATION_NAME = "synth/aoi1"
CAMERA = "cam1"
# ORB features per image: enough for these boards, and registration stays near 15 ms
MAX_FEATURES = 1000
_MAX_CROP_ERROR_PX = 1.0  # registration must put every box corner this close to the truth
T = TypeVar("T")


@dataclass(frozen=True)
class StationSummary:
    """What was generated: counts per split and per connector folder, and how long it took."""

    out: Path
    seed: int
    shift: str
    boards: dict[str, int]
    crops: dict[str, dict[str, int]]  # connector -> "<split>/<ok|ko>" -> crops
    boxes: dict[str, tuple[int, int, int, int]]
    parts: dict[str, str]  # connector -> part type
    kinds: dict[str, int]  # KO kind -> count over val and test
    seconds: float

    def lines(self) -> list[str]:
        """A short human summary."""
        splits = ", ".join(f"{split} {n}" for split, n in self.boards.items())
        lines = [
            f"station {self.out} (seed {self.seed}, shift {self.shift}): "
            f"{sum(self.boards.values())} boards ({splits}) in {self.seconds:.1f} s"
        ]
        for cid, counts in self.crops.items():
            w, h = self.boxes[cid][2:]
            folders = "  ".join(f"{folder} {n:>3}" for folder, n in counts.items())
            lines.append(f"  {cid} {self.parts[cid]:<16} {w:>3}x{h:<3}  {folders}")
        kinds = ", ".join(f"{kind} {n}" for kind, n in sorted(self.kinds.items()))
        lines.append(f"  KO kinds (val + test): {kinds or 'none'}")
        return lines


@dataclass(frozen=True)
class _Job:
    """What every board of a run shares (sent once to each worker)."""

    out: Path
    seed: int
    shift: str
    station: Station
    reference: np.ndarray


class _BoardWriter:
    """Renders, writes and crops boards of one run, registering them as the agent does."""

    def __init__(self, job: _Job) -> None:
        self.job = job
        self.registrar = Registrar(job.reference, RegistrationSettings(max_features=MAX_FEATURES))
        self.connectors = {
            cid: ConnectorSettings(box=box) for cid, box in job.station.boxes.items()
        }

    def __call__(self, plan: BoardPlan) -> dict[str, Any]:
        """Generate one board; returns its labels.json entry."""
        job = self.job
        rng = np.random.default_rng([job.seed, 1, plan.index])
        domain = "none" if plan.split == "train" else job.shift
        photo = job.station.photo(rng, plan.defects, domain)
        ok, jpeg = cv2.imencode(".jpg", photo.image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            raise RuntimeError(f"{plan.name}: JPEG encoding failed")
        image_name = f"{plan.name}.jpg"
        (job.out / "boards" / image_name).write_bytes(jpeg.tobytes())
        image = decode_image(jpeg.tobytes(), max_bytes=1 << 30, max_pixels=1 << 30)
        try:
            registration = self.registrar.register(image)
        except RegistrationError as exc:
            raise RuntimeError(f"{plan.name}: a generated board failed to register: {exc}") from exc
        error = _crop_error(photo.truth, registration.matrix, list(job.station.boxes.values()))
        if error > _MAX_CROP_ERROR_PX:
            raise RuntimeError(f"{plan.name}: registration is {error:.2f} px off the true pose")
        labels = {}
        for cid, crop in crop_all(image, registration, self.connectors).items():
            kind = plan.defects.get(cid)
            folder = job.out / "crops" / cid / plan.split
            write_png(folder / ("ko" if kind else "ok") / f"{plan.name}.png", crop)
            if kind:
                write_png(folder / "ko_masks" / f"{plan.name}.png", photo.masks[cid])
            labels[cid] = {"label": "KO" if kind else "OK", "kind": kind}
        return {"image": image_name, "split": plan.split, "connectors": labels}


_writer: _BoardWriter | None = None  # a pool worker's own


def _start_worker(job: _Job) -> None:
    global _writer
    cv2.setNumThreads(1)  # the processes share the cores
    _writer = _BoardWriter(job)


def _make_board(plan: BoardPlan) -> dict[str, Any]:
    assert _writer is not None, "pool worker not initialised"
    return _writer(plan)


def write_png(path: Path, image: np.ndarray) -> None:
    ok, data = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_COMPRESSION])
    if not ok:
        raise RuntimeError(f"{path}: PNG encoding failed")
    path.write_bytes(data.tobytes())


def _crop_error(truth: np.ndarray, matrix: np.ndarray, boxes: list[tuple[int, ...]]) -> float:
    corners = np.array(
        [(x + dx, y + dy, 1.0) for x, y, w, h in boxes for dx in (0, w - 1) for dy in (0, h - 1)]
    )
    return float(np.linalg.norm(corners @ (matrix - truth).T, axis=1).max())


def _shown(items: Iterable[T], total: int, progress: bool) -> Iterable[T]:
    return track(items, total, "boards") if progress else items


def _prepare(out: Path, station: Station, plans: list[BoardPlan]) -> None:
    """Empty folders for a fresh station; replaces a previous synthetic station in `out`."""
    boards, crops = out / "boards", out / "crops"
    if (boards / "labels.json").is_file():
        shutil.rmtree(boards)
        shutil.rmtree(crops, ignore_errors=True)
    elif boards.exists() or crops.exists():
        raise FileExistsError(f"{out}: holds boards/ or crops/ that are not a synthetic station")
    boards.mkdir(parents=True)
    (out / "drop" / CAMERA).mkdir(parents=True, exist_ok=True)
    ko_ids = {cid for plan in plans for cid in plan.defects}
    for place in station.places:
        for split in ("train", "val", "test"):
            (crops / place.id / split / "ok").mkdir(parents=True, exist_ok=True)
            if split != "train" and place.id in ko_ids:
                (crops / place.id / split / "ko").mkdir(exist_ok=True)
                (crops / place.id / split / "ko_masks").mkdir(exist_ok=True)


def station_comment(seed: int, boards: int, shift: str) -> str:
    """What made a station: the first line of its config.toml, after '# '."""
    return f"synthetic station (--seed {seed} --boards {boards} --shift {shift})"


def config_toml(station: Station, comment: str) -> str:
    """The station's config.toml: paths relative to the station folder."""
    lines = [
        f"# {comment}",
        "[station]",
        f'name = "{STATION_NAME}"',
        'reference_image = "boards/reference.png"',
        f'camera = "{CAMERA}"',
        "",
    ]
    for cid, (x, y, w, h) in station.boxes.items():
        lines += [f"[connectors.{cid}]", f"box = [{x}, {y}, {w}, {h}]", ""]
    lines += [
        "[registration]",
        f"max_features = {MAX_FEATURES}",
        "",
        "[inputs]",
        f'drop_folders = {{ {CAMERA} = "drop/{CAMERA}" }}',
        "",
        "[paths]",
        'models = "models"',
        'state = "state"',
        "",
        "[mqtt]",
        f'prefix = "{STATION_NAME}"',
        "port = 1883",
        "",
        "[retrain]",
        'seed_data = "crops"',
    ]
    return "\n".join(lines) + "\n"


def generate_station(
    out: Path,
    seed: int = 0,
    boards: int = DEFAULT_BOARDS,
    shift: str = "none",
    progress: bool = True,
    workers: int | None = None,
) -> StationSummary:
    """Generate a station into `out`; the same seed and arguments give the same files."""
    if shift not in DOMAINS:
        raise ValueError(f"shift {shift!r} is not one of {', '.join(DOMAINS)}")
    split_sizes(boards)
    started = time.perf_counter()
    out = Path(out)
    station = Station.build(seed)
    ko_ids = [place.id for place in station.places if place.ko_capable]
    plans = plan_boards(np.random.default_rng([seed, 2]), boards, ko_ids)
    _prepare(out, station, plans)
    reference = station.reference()
    write_png(out / "boards" / "reference.png", reference)
    job = _Job(out, seed, shift, station, reference)
    workers = max(1, min(workers or 2, os.cpu_count() or 1, len(plans)))
    if workers == 1:
        writer = _BoardWriter(job)
        entries = [writer(plan) for plan in _shown(plans, len(plans), progress)]
    else:
        # spawn, not fork: a forked child can deadlock in OpenCV's inherited thread pool
        context = multiprocessing.get_context("spawn")
        with context.Pool(workers, _start_worker, (job,)) as pool:
            results = pool.imap(_make_board, plans, chunksize=4)
            entries = list(_shown(results, len(plans), progress))
    (out / "boards" / "labels.json").write_text(json.dumps(entries, indent=1) + "\n")
    (out / "config.toml").write_text(config_toml(station, station_comment(seed, boards, shift)))
    return _summary(out, seed, shift, station, plans, time.perf_counter() - started)


def _summary(
    out: Path, seed: int, shift: str, station: Station, plans: list[BoardPlan], seconds: float
) -> StationSummary:
    crops: dict[str, dict[str, int]] = {}
    for place in station.places:
        counts: Counter[str] = Counter()
        for plan in plans:
            counts[f"{plan.split}/{'ko' if place.id in plan.defects else 'ok'}"] += 1
        order = ("train/ok", "val/ok", "val/ko", "test/ok", "test/ko")
        crops[place.id] = {folder: counts[folder] for folder in order if folder in counts}
    return StationSummary(
        out=out,
        seed=seed,
        shift=shift,
        boards=dict(Counter(plan.split for plan in plans)),
        crops=crops,
        boxes=station.boxes,
        parts={place.id: place.kind for place in station.places},
        kinds=dict(Counter(kind for plan in plans for kind in plan.defects.values())),
        seconds=seconds,
    )
