"""Synthetic defects pasted on OK crops: an estimate of recall where a connector has no KO.

Four kinds, after the defects a line cares about, each placed where the bundle's weight mask
looks (a place drawn with probability proportional to its weight):
- `missing`: a block replaced by the board around the part (the median of the crop's outer ring)
  with its grain (noise of the ring's spread);
- `cable`: a thick curved stroke from one side to the other, darker or brighter than the crop;
- `crack`: a thin jagged line, 40 % darker than the crop's median;
- `shifted`: a block of the crop moved by about a tenth of its side.

Recall on these is an estimate beside the real recall, never a substitute: real defects differ.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_agent.inspect.scoring import ConnectorModel
from trainer.evaluation.report import THRESHOLD
from trainer.evaluation.scoring import WEIGHT_MASK_FILE

KINDS = ("missing", "cable", "crack", "shifted")
EXAMPLES_FILE = "synthetic_defects.png"
RING = 0.05  # the outer ring, as a fraction of the side, that shows the board around the part


def paste(crop: np.ndarray, kind: str, rng: np.random.Generator, weights: np.ndarray) -> np.ndarray:
    """A copy of `crop` (H, W, 3 uint8) with one defect of `kind`, placed by `weights`."""
    side = min(crop.shape[:2])
    center = _place(crop.shape[:2], weights, rng)
    out = crop.copy()
    if kind == "missing":
        _missing(out, center, rng)
    elif kind == "cable":
        _cable(out, center, side, rng)
    elif kind == "crack":
        _crack(out, center, side, rng)
    elif kind == "shifted":
        _shifted(out, crop, center, side, rng)
    else:
        raise ValueError(f"unknown synthetic defect {kind!r}; known: {KINDS}")
    return out


def synthetic_recall(
    bundle_dir: Path,
    ok_crops: np.ndarray,
    per_kind: int = 25,
    seed: int = 0,
    examples_png: Path | None = None,
    model: ConnectorModel | None = None,
) -> dict[str, float]:
    """The share of pasted defects the bundle calls KO at its own threshold: per kind and "all".

    Each kind is pasted on `per_kind` crops taken in turn from `ok_crops` (N, H, W, 3 uint8).
    `examples_png` gets the first crop clean and with each kind, each with its score; `model`:
    the bundle already opened.
    """
    if not len(ok_crops):
        raise ValueError("no OK crops to paste synthetic defects on")
    model = model or ConnectorModel.load(Path(bundle_dir), threads=2)
    weights = np.load(Path(bundle_dir) / WEIGHT_MASK_FILE, allow_pickle=False)
    rng = np.random.default_rng(seed)
    caught: dict[str, float] = {}
    examples = [("clean", ok_crops[0], model.score(ok_crops[0]).score)]
    for kind in KINDS:
        scores = []
        for i in range(per_kind):
            defective = paste(ok_crops[i % len(ok_crops)], kind, rng, weights)
            scores.append(model.score(defective).score)
            if i == 0:
                examples.append((kind, defective, scores[0]))
        caught[kind] = float(np.mean(np.array(scores) >= THRESHOLD))
    caught["all"] = float(np.mean([caught[kind] for kind in KINDS]))
    if examples_png is not None:
        write_examples(examples_png, examples)
    return caught


def synthetic_metrics(
    bundle_dir: Path,
    ok_crops: np.ndarray,
    report_dir: Path,
    model: ConnectorModel | None = None,
) -> dict:
    """The estimate as report metrics (`synthetic_recall`, `synthetic_by_kind`), with the example
    strip written to `report_dir / EXAMPLES_FILE`."""
    report_dir.mkdir(parents=True, exist_ok=True)
    recall = synthetic_recall(
        bundle_dir, ok_crops, examples_png=report_dir / EXAMPLES_FILE, model=model
    )
    return {
        "synthetic_recall": round(recall["all"], 3),
        "synthetic_by_kind": {kind: round(recall[kind], 3) for kind in KINDS},
    }


def write_examples(path: Path, examples: list[tuple[str, np.ndarray, float]]) -> None:
    """One strip: each crop (enlarged to at least 160 px high) under its name and score."""
    height = max(160, examples[0][1].shape[0])
    tiles = []
    for name, crop, score in examples:
        scale = height / crop.shape[0]
        tile = cv2.resize(crop, (round(crop.shape[1] * scale), height), cv2.INTER_NEAREST)
        label = np.full((24, tile.shape[1], 3), 255, np.uint8)
        verdict = "KO" if score >= THRESHOLD else "OK"
        text = f"{name} {score:.2f} {verdict}"
        cv2.putText(label, text, (4, 17), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
        tiles.append(
            np.vstack([label, tile, np.full((height // 20, tile.shape[1], 3), 255, np.uint8)])
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(
        str(path),
        np.hstack([np.pad(t, ((0, 0), (0, 6), (0, 0)), constant_values=255) for t in tiles]),
    )


def _place(shape: tuple[int, int], weights: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """(x, y) of a defect's centre: inside the inner 70 % of the crop, drawn by weight."""
    h, w = shape
    field = cv2.resize(np.atleast_2d(np.asarray(weights, np.float32).squeeze()), (w, h))
    inner = np.zeros((h, w), np.float32)
    inner[int(0.15 * h) : int(np.ceil(0.85 * h)), int(0.15 * w) : int(np.ceil(0.85 * w))] = 1.0
    p = np.clip(field, 0, None) * inner
    p = p.ravel() / p.sum() if p.sum() > 0 else inner.ravel() / inner.sum()
    index = rng.choice(h * w, p=p)
    return np.array([index % w, index // w])


def _ring(crop: np.ndarray) -> np.ndarray:
    h, w = crop.shape[:2]
    r = max(1, int(RING * min(h, w)))
    sides = (crop[:r], crop[-r:], crop[:, :r], crop[:, -r:])
    return np.concatenate([side.reshape(-1, 3) for side in sides]).astype(np.float32)


def _missing(out: np.ndarray, center: np.ndarray, rng: np.random.Generator) -> None:
    ring = _ring(out)
    h, w = out.shape[:2]
    half = (rng.uniform(0.10, 0.18, 2) * [w, h]).astype(int) + 1
    (x0, y0), (x1, y1) = np.maximum(center - half, 0), center + half
    block = out[y0:y1, x0:x1]
    noise = rng.normal(0, 1, (*block.shape[:2], 1)) * ring.std(0)
    block[:] = np.clip(np.median(ring, 0) + noise, 0, 255).astype(np.uint8)


def _stroke_colour(out: np.ndarray, rng: np.random.Generator) -> tuple[int, int, int]:
    """Well below the crop's darkest tenth or above its brightest tenth."""
    gray = out.mean(2)
    if rng.random() < 0.5:
        return (int(0.4 * np.percentile(gray, 10)),) * 3
    return (int(255 - 0.4 * (255 - np.percentile(gray, 90))),) * 3


def _cable(out: np.ndarray, center: np.ndarray, side: int, rng: np.random.Generator) -> None:
    h, w = out.shape[:2]
    angle = rng.uniform(0, np.pi)
    direction = np.array([np.cos(angle), np.sin(angle)])
    normal = np.array([-direction[1], direction[0]]) * rng.uniform(-0.15, 0.15) * side
    t = np.linspace(-1, 1, 24)[:, None]
    points = center + t * direction * (h + w) + (1 - t**2) * normal
    thickness = max(2, int(rng.uniform(0.05, 0.09) * side))
    cv2.polylines(
        out, [points.astype(np.int32)], False, _stroke_colour(out, rng), thickness, cv2.LINE_AA
    )


def _crack(out: np.ndarray, center: np.ndarray, side: int, rng: np.random.Generator) -> None:
    steps = 10
    heading = rng.uniform(0, 2 * np.pi) + np.cumsum(rng.normal(0, 0.5, steps))
    step = rng.uniform(0.3, 0.5) * side / steps
    moves = np.stack([np.cos(heading), np.sin(heading)], 1) * step
    points = center + np.vstack([[0, 0], np.cumsum(moves, 0)]) - moves.sum(0) / 2
    colour = (int(0.6 * np.median(out.mean(2))),) * 3  # faint, as a hairline crack is
    cv2.polylines(out, [points.astype(np.int32)], False, colour, max(1, side // 150), cv2.LINE_AA)


def _shifted(
    out: np.ndarray, crop: np.ndarray, center: np.ndarray, side: int, rng: np.random.Generator
) -> None:
    h, w = crop.shape[:2]
    half = int(rng.uniform(0.15, 0.22) * side) + 1
    angle = rng.uniform(0, 2 * np.pi)
    offset = (np.array([np.cos(angle), np.sin(angle)]) * rng.uniform(0.08, 0.15) * side).astype(int)
    x0, y0 = np.clip(center - half, 0, [w - 1, h - 1])
    x1, y1 = np.clip(center + half, 1, [w, h])
    tx0, ty0 = np.clip(np.array([x0, y0]) + offset, 0, [w - (x1 - x0), h - (y1 - y0)])
    out[ty0 : ty0 + (y1 - y0), tx0 : tx0 + (x1 - x0)] = crop[y0:y1, x0:x1]
