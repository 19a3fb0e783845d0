"""Evaluation report of one connector model: metrics.json, scores.csv, curves and visuals."""

from __future__ import annotations

import csv
import json
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import cv2
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from sklearn.metrics import precision_recall_curve, roc_curve

from edge_agent.contracts.atomic import write_text_atomic
from edge_agent.inspect.heatmap import colourise, overlay_heatmap
from trainer.evaluation.metrics import image_metrics, pixel_metrics

THRESHOLD = 1.0
VMAX = 2.0
LOG_COUNTS_RATIO = 10
REQUIRED_KEYS = (
    "image_auroc",
    "image_aupr",
    "f1",
    "threshold",
    "false_reject_rate",
    "recall",
    "pixel_auroc",
    "pro",
    "n_train",
    "n_test_ok",
    "n_test_ko",
    "train_seconds",
)


@dataclass
class ScoredSample:
    """One scored test crop: its calibrated score, masked map and, optionally, raw map and GT."""

    path: str
    label: Literal["OK", "KO"]
    score: float
    amap: np.ndarray
    crop: np.ndarray
    raw_map: np.ndarray | None = None
    gt_mask: np.ndarray | None = None


def write_report(
    out_dir: Path,
    samples: Sequence[ScoredSample],
    extra: dict,
    *,
    title: str,
    weight_mask: np.ndarray | None = None,
    n_visuals: int = 4,
) -> dict:
    """Write the report files into `out_dir`; metrics.json comes last, so it marks completion."""
    if not samples:
        raise ValueError(f"no samples to report on for {title!r}")
    bad = sorted({s.label for s in samples} - {"OK", "KO"})
    if bad:
        raise ValueError(f"sample labels must be 'OK' or 'KO', got {bad}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous(out_dir)
    labels = np.array([s.label == "KO" for s in samples], dtype=np.int64)
    scores = np.array([s.score for s in samples], dtype=np.float64)
    computed = image_metrics(labels, scores, THRESHOLD)
    computed |= pixel_metrics([s.amap for s in samples], [_pixel_truth(s) for s in samples])
    clash = sorted(set(extra) & set(computed))
    if clash:
        raise ValueError(f"extra keys {clash} would overwrite computed metrics")
    metrics = _plain(dict.fromkeys(REQUIRED_KEYS) | computed | extra)

    _write_scores(out_dir / "scores.csv", samples)
    _write_histogram(out_dir / "score_histogram.png", labels, scores, title)
    for kind in _CURVES:
        _write_curve(out_dir / f"{kind}_curve.png", kind, labels, scores, metrics, title)
    picks = _pick_visuals(samples, n_visuals)
    _write_visuals(out_dir / "visuals", picks)
    _write_raw_vs_masked(out_dir / "raw_vs_masked.png", samples, title)
    if weight_mask is not None:
        _write_weight_mask(out_dir / "weight_mask.png", weight_mask, title)
    write_text_atomic(
        out_dir / "metrics.json", json.dumps(metrics, indent=2, allow_nan=False) + "\n"
    )
    return metrics


def _clear_previous(out_dir: Path) -> None:
    """Drop what an earlier report here wrote that this one might not overwrite."""
    (out_dir / "metrics.json").unlink(missing_ok=True)
    (out_dir / "weight_mask.png").unlink(missing_ok=True)
    shutil.rmtree(out_dir / "visuals", ignore_errors=True)


def _pixel_truth(sample: ScoredSample) -> np.ndarray | None:
    if sample.gt_mask is not None or sample.label == "KO":
        return sample.gt_mask
    return np.zeros(sample.crop.shape[:2], dtype=np.uint8)


def _write_scores(path: Path, samples: Sequence[ScoredSample]) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["path", "label", "score", "predicted"])
        for s in samples:
            predicted = "KO" if s.score >= THRESHOLD else "OK"
            writer.writerow([s.path, s.label, f"{s.score:.6f}", predicted])


def _write_histogram(path: Path, labels: np.ndarray, scores: np.ndarray, title: str) -> None:
    ok, ko = scores[labels == 0], scores[labels == 1]
    low, high = min(0.0, scores.min()), max(1.5 * THRESHOLD, scores.max())
    edges = np.histogram_bin_edges(scores, bins=50, range=(low, high))
    fig = _figure((6, 4))
    ax = fig.subplots()
    for values, name, colour in ((ok, "OK", "tab:blue"), (ko, "KO", "tab:red")):
        if values.size:
            ax.hist(values, bins=edges, alpha=0.6, color=colour, label=f"{name} (n={values.size})")
    ax.axvline(THRESHOLD, color="black", linestyle="--", label=f"threshold {THRESHOLD:.1f}")
    if ko.size and ok.size > LOG_COUNTS_RATIO * ko.size:
        ax.set_yscale("log")
        ax.set_ylabel("count (log)")
    else:
        ax.set_ylabel("count")
    if not ko.size:
        ax.text(0.98, 0.9, "no KO samples", transform=ax.transAxes, ha="right")
    ax.set_xlabel("calibrated score")
    ax.set_title(f"{title}: score distribution")
    ax.legend(loc="best")
    _save(fig, path)


def _write_curve(
    path: Path, kind: str, labels: np.ndarray, scores: np.ndarray, metrics: dict, title: str
) -> None:
    """The ROC or precision-recall figure: one frame, the curve drawn by its `_CURVES` entry."""
    metric, name, heading, draw = _CURVES[kind]
    fig = _figure((5, 5))
    ax = fig.subplots()
    if metrics[metric] is None:
        _say_undefined(ax, labels, name)
    else:
        draw(ax, labels, scores, metrics)
    ax.set_title(f"{title}: {heading}")
    _save(fig, path)


def _draw_roc(ax: Any, labels: np.ndarray, scores: np.ndarray, metrics: dict) -> None:
    fpr, tpr, _ = roc_curve(labels, scores)
    ax.plot(fpr, tpr, label=f"AUROC = {metrics['image_auroc']:.3f}")
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":")
    _mark_threshold(ax, metrics["false_reject_rate"], metrics["recall"])
    ax.set_xlabel("false positive rate (OK rejected)")
    ax.set_ylabel("true positive rate (KO caught)")
    ax.legend(loc="lower right")


def _draw_pr(ax: Any, labels: np.ndarray, scores: np.ndarray, metrics: dict) -> None:
    precision, recall, _ = precision_recall_curve(labels, scores)
    ax.step(recall, precision, where="post", label=f"AUPR = {metrics['image_aupr']:.3f}")
    ax.axhline(labels.mean(), color="grey", linestyle=":", label="KO prevalence")
    flagged = scores >= THRESHOLD
    if flagged.any():
        _mark_threshold(ax, metrics["recall"], labels[flagged].mean())
    ax.set_xlabel("recall (KO caught)")
    ax.set_ylabel("precision")
    ax.set_ylim(0.0, 1.05)
    ax.legend(loc="lower left")


def _mark_threshold(ax: Any, x: float, y: float) -> None:
    ax.plot(x, y, "o", color="black", label=f"threshold {THRESHOLD:.1f}")


_CURVES = {
    # kind: (metric that must be defined, name when undefined, title, drawing)
    "roc": ("image_auroc", "ROC curve", "ROC", _draw_roc),
    "pr": ("image_aupr", "PR curve", "precision-recall", _draw_pr),
}


def _say_undefined(ax: Any, labels: np.ndarray, what: str) -> None:
    missing = "KO" if not labels.any() else "OK"
    ax.text(
        0.5,
        0.5,
        f"{what} undefined:\nno {missing} samples in the test set",
        ha="center",
        va="center",
        fontsize=12,
    )
    ax.set_axis_off()


def _pick_visuals(
    samples: Sequence[ScoredSample], n_visuals: int
) -> list[tuple[str, ScoredSample]]:
    """KO extremes, the OK nearest a false reject, a typical OK, then the nearest to 1.0."""
    ok, ko = _by_score(samples, "OK"), _by_score(samples, "KO")
    roles = [("ko_highest", ko[-1:]), ("ko_lowest", ko[:1])]
    roles += [("ok_highest", ok[-1:]), ("ok_typical", ok[len(ok) // 2 :][:1])]
    roles += [
        (f"near_threshold_{s.label.lower()}", [s])
        for s in sorted(samples, key=lambda s: abs(s.score - THRESHOLD))
    ]
    chosen: list[tuple[str, ScoredSample]] = []
    seen: set[int] = set()
    for role, candidates in roles:
        for sample in candidates:
            if id(sample) not in seen:
                seen.add(id(sample))
                chosen.append((role, sample))
    return chosen[:n_visuals]


def _by_score(samples: Sequence[ScoredSample], label: str) -> list[ScoredSample]:
    return sorted((s for s in samples if s.label == label), key=lambda s: s.score)


def _distinct(samples: list[ScoredSample]) -> list[ScoredSample]:
    return list({id(s): s for s in samples}.values())


def _write_visuals(folder: Path, picks: list[tuple[str, ScoredSample]]) -> None:
    folder.mkdir(exist_ok=True)
    for index, (role, sample) in enumerate(picks):
        crop = _as_bgr(sample.crop)
        height, width = crop.shape[:2]
        stem = f"{index:02d}_{role}_{_safe_stem(sample.path)}"
        images = {
            "original": crop,
            "heatmap": colourise(sample.amap, (width, height), VMAX),
            "overlay": overlay_heatmap(crop, sample.amap, VMAX),
        }
        for kind, image in images.items():
            target = folder / f"{stem}_{kind}.png"
            if not cv2.imwrite(str(target), image):
                raise OSError(f"could not write {target}")


def _write_raw_vs_masked(path: Path, samples: Sequence[ScoredSample], title: str) -> None:
    ok, ko = _by_score(samples, "OK"), _by_score(samples, "KO")
    rows = _distinct(ok[-1:] + ko[:1] + ok[len(ok) // 2 :][:1] + ok + ko)[:2]
    fig = _figure((10, 3.4 * len(rows)))
    fig.subplots_adjust(left=0.02, right=0.95, bottom=0.03, top=0.84, wspace=0.1, hspace=0.35)
    axes = np.atleast_2d(fig.subplots(len(rows), 3))
    for row, sample in zip(axes, rows, strict=True):
        crop = _as_bgr(sample.crop)
        height, width = crop.shape[:2]
        row[0].imshow(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB))
        row[0].set_title(f"{sample.label} {Path(sample.path).name}\nscore {sample.score:.3f}")
        if sample.raw_map is None:
            row[1].text(0.5, 0.5, "no raw map", ha="center", va="center")
            row[1].set_title("raw map")
        else:
            _show_map(row[1], sample.raw_map, (width, height))
            row[1].set_title(f"raw map\nmax {float(np.max(sample.raw_map)):.3f}")
        image = _show_map(row[2], sample.amap, (width, height))
        row[2].set_title(f"masked map\nscore {sample.score:.3f}")
        fig.colorbar(image, ax=row[2], shrink=0.8)
        for ax in row:
            ax.set_axis_off()
    fig.suptitle(f"{title}: raw vs masked map (threshold {THRESHOLD:.1f})")
    _save(fig, path)


def _write_weight_mask(path: Path, weight_mask: np.ndarray, title: str) -> None:
    fig = _figure((4.5, 4))
    ax = fig.subplots()
    image = ax.imshow(weight_mask, cmap="gray", vmin=0.0, vmax=max(1.0, float(weight_mask.max())))
    fig.colorbar(image, ax=ax)
    ax.set_title(f"{title}: weight mask")
    ax.set_axis_off()
    _save(fig, path)


def _show_map(ax: Any, amap: np.ndarray, size: tuple[int, int]) -> Any:
    resized = cv2.resize(amap.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)
    return ax.imshow(resized, cmap="jet", vmin=0.0, vmax=VMAX)


def _as_bgr(crop: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(crop, cv2.COLOR_GRAY2BGR) if crop.ndim == 2 else crop


def _safe_stem(path: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", Path(path).stem) or "sample"


def _figure(size: tuple[float, float]) -> Figure:
    """A figure drawn by Agg alone: no pyplot state, no display, nothing to close."""
    fig = Figure(figsize=size)
    FigureCanvasAgg(fig)
    return fig


def _save(fig: Figure, path: Path) -> None:
    fig.savefig(path, dpi=100)


def _plain(value: Any) -> Any:
    """JSON-ready copy: numpy to Python, paths to text, NaN and infinities to None (null)."""
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_plain(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not np.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"metrics value {value!r} of type {type(value).__name__} is not JSON")
