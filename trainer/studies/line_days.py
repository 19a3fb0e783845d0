"""Two days at a line, simulated on a bundle's test scores: day one at the bundle's own
threshold, the operators' confirmations, recalibration from the line, day two at the new one.

Each run shuffles the test OK and KO with its own seed and splits each in half, one half a day;
a day's KO are subsampled to `ko_share` of its stream (a line sees few KO). On day one every
NOK and every OK scoring at least `REVIEW_SHARE` of the threshold is confirmed with its true
label, the rest stays unconfirmed (KO among them are escapes nobody labelled); `line_threshold`
then sets day two's threshold from day one's scores alone. Scores are on the bundle's scale
(1.0 = its threshold), as `report/scores.csv` and the journal hold them.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from trainer.calibration import REVIEW_SHARE, LineScores, line_threshold
from trainer.evaluation.metrics import recall_at_false_reject
from trainer.evaluation.tables import write_tables
from trainer.settings import RetrainSettings, TrainingSettings

BEST_AT = 0.005


@dataclass(frozen=True)
class LineSettings:
    """The recalibration rule's settings and the simulated line's KO share."""

    target_false_reject: float = 0.005
    confidence: float = 0.9
    min_ok: int = 100
    ko_share: float = 0.1


def read_scores(scores_csv: Path) -> tuple[np.ndarray, np.ndarray]:
    """(OK scores, KO scores) of a bundle's test report."""
    with Path(scores_csv).open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    ok = np.array([float(r["score"]) for r in rows if r["label"] == "OK"])
    ko = np.array([float(r["score"]) for r in rows if r["label"] == "KO"])
    return ok, ko


def _day(ok: np.ndarray, ko: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """A day's KO: `share` of the day's stream (at least one when there are any)."""
    wanted = min(len(ko), max(1 if len(ko) else 0, round(share / (1 - share) * len(ok))))
    return rng.choice(ko, wanted, replace=False) if wanted else ko[:0]


def one_run(ok: np.ndarray, ko: np.ndarray, settings: LineSettings, seed: int) -> dict:
    """Day one, confirmations, recalibration, day two: false reject and recall of each day."""
    rng = np.random.default_rng(seed)
    ok, ko = rng.permutation(ok), rng.permutation(ko)
    ok1, ok2 = ok[: len(ok) // 2], ok[len(ok) // 2 :]
    ko1 = _day(ok1, ko[: len(ko) // 2], settings.ko_share, rng)
    ko2 = _day(ok2, ko[len(ko) // 2 :], settings.ko_share, rng)
    scores = np.concatenate([ok1, ko1])
    truth = np.array(["OK"] * len(ok1) + ["KO"] * len(ko1))
    labels = np.where(scores >= REVIEW_SHARE, truth, "")
    line = line_threshold(
        LineScores(scores, labels), settings.target_false_reject, settings.confidence,
        settings.min_ok,
    )  # fmt: skip
    threshold = line.threshold if line is not None else 1.0
    return {
        "day1_false_reject": float(np.mean(ok1 >= 1.0)),
        "day1_recall": float(np.mean(ko1 >= 1.0)) if len(ko1) else None,
        "day2_threshold": threshold,
        "recalibrated": line is not None,
        "day2_false_reject": float(np.mean(ok2 >= threshold)),
        "day2_recall": float(np.mean(ko2 >= threshold)) if len(ko2) else None,
        "day2_best_recall": (
            recall_at_false_reject(ok2, ko2, BEST_AT) if len(ko2) and len(ok2) else None
        ),
    }


def simulate(ok: np.ndarray, ko: np.ndarray, settings: LineSettings, runs: int) -> dict:
    """Means over `runs` random orders (seeds 0..runs-1) of every column of `one_run`."""
    results = [one_run(ok, ko, settings, seed) for seed in range(runs)]
    summary: dict = {"runs": runs, "recalibrated_runs": sum(r["recalibrated"] for r in results)}
    for key in results[0]:
        if key == "recalibrated":
            continue
        values = [r[key] for r in results if r[key] is not None]
        summary[key] = float(np.mean(values)) if values else None
    return summary


LINE_COLUMNS = (
    "data_set", "connector", "method", "runs", "recalibrated_runs", "day1_false_reject",
    "day1_recall", "day2_threshold", "day2_false_reject", "day2_recall", "day2_best_recall",
)  # fmt: skip


def line_rows(quality_rows: list[dict], out: Path, settings: LineSettings, runs: int) -> list[dict]:
    """Two days at the line for every bench-quality row with test OK (from its `scores_csv`,
    else its bundle's `report/scores.csv`); KO-less connectors get false reject only."""
    rows = []
    for row in quality_rows:
        if row.get("error"):
            continue
        bundle = out / row["data_set"] / "models" / row["method"] / row["connector"]
        ok, ko = read_scores(
            row.get("scores_csv") or bundle / row["version"] / "report" / "scores.csv"
        )
        if len(ok) < 2:
            continue
        found = simulate(ok, ko, settings, runs)
        rows.append({key: row[key] for key in ("data_set", "connector", "method")} | found)
    return rows


def plot_line_days(rows: list[dict], path: Path) -> None:
    """Recall and false reject of day one, day two and the best at 0.5 % on day two, per row."""
    figure = Figure(figsize=(max(6.0, 1.2 * len(rows) + 2), 6.5))
    FigureCanvasAgg(figure)
    recall_axis, reject_axis = figure.subplots(2, 1, sharex=True)
    x = np.arange(len(rows))
    names = [f"{r['data_set']}\n{r['connector']} {r['method']}" for r in rows]
    bars = (
        ("day 1", "day1_recall", "day1_false_reject", -0.27),
        ("day 2", "day2_recall", "day2_false_reject", 0.0),
        ("best at 0.5 %, day 2", "day2_best_recall", None, 0.27),
    )
    for label, recall_key, reject_key, offset in bars:
        recall = [r.get(recall_key) or 0.0 for r in rows]
        recall_axis.bar(x + offset, recall, 0.25, label=label)
        if reject_key:
            reject = [100 * (r.get(reject_key) or 0.0) for r in rows]
            reject_axis.bar(x + offset, reject, 0.25, label=label)
    reject_axis.axhline(1.0, color="black", linewidth=0.8, linestyle="--")
    recall_axis.set_ylabel("recall")
    recall_axis.set_ylim(0, 1)
    reject_axis.set_ylabel("false reject %")
    reject_axis.set_xticks(x, names, fontsize=8)
    recall_axis.legend(fontsize=8)
    recall_axis.set_title(
        "two days at the line: day one at the bundle's threshold,\n"
        "day two recalibrated from day one's scores and confirmations",
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def write_line(
    out: Path, quality_rows: list[dict], retrain: RetrainSettings, training: TrainingSettings,
    runs: int,
) -> str:  # fmt: skip
    """OUT/line.md, .csv and .png for the bench-quality rows, with the station's rule settings."""
    settings = LineSettings(
        target_false_reject=training.target_false_reject,
        confidence=retrain.recalibrate_confidence,
        min_ok=retrain.recalibrate_min_ok,
    )
    rows = line_rows(quality_rows, out, settings, runs)
    if rows:
        plot_line_days(rows, out / "line.png")
    return write_tables(out / "line.md", out / "line.csv", rows, list(LINE_COLUMNS), [])
