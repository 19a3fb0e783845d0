"""`bench-quality --data-sets station-mild`: the default station's clean models, thresholds
unchanged, on the same station shot in the `mild` capture domain (`synth --shift mild`: light
brighter or darker and uneven, softer focus, more noise, larger placement spread).

What a line sees when its capture moves a little after set-up. The shifted station is generated
once (`--shifted-boards`, default `SHIFTED_BOARDS`; the same seed, so the same layout and
reference); its val and test splits, which the clean models never saw, are pooled into one test
set so that each day of `--line` has more OK scores than the recalibration's minimum. Each row
is measured on that set with the clean bundle (`evaluate_bundle`); its scores feed `--line` like
any other row's.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import structlog

from trainer.datasets import list_images, load_connector_data
from trainer.evaluation.scoring import evaluate_bundle
from trainer.progress import bar
from trainer.settings import TrainingSettings
from trainer.studies.quality import best_recall
from trainer.synth.station import generate_station

log = structlog.get_logger()

SHIFTED = {"station-mild": "mild"}  # data set -> capture domain of `trainer/synth/variation.py`
SHIFTED_BOARDS = 700  # val + test: ~260 OK crops per connector, ~130 a simulated day
POOLED = {"test/ok": ("val/ok", "test/ok"), "test/ko": ("val/ko", "test/ko")}
POOLED["test/ko_masks"] = ("val/ko_masks", "test/ko_masks")


def build_shifted(root: Path, name: str, boards: int) -> Path:
    """The shifted station's crop folders at `root/<name>-<boards>/crops` (generated once)."""
    station = root / f"{name}-{boards}"
    if not (station / "config.toml").is_file():  # written last: anything else is unfinished
        shutil.rmtree(station, ignore_errors=True)
        generate_station(station, seed=0, boards=boards, shift=SHIFTED[name])
    return station / "crops"


def pooled_test(connector: Path, out: Path) -> Path:
    """`out`: links to `connector`'s train OK and its val and test crops as one test split."""
    shutil.rmtree(out, ignore_errors=True)
    splits = {"train/ok": ("train/ok",), **POOLED}
    for target, sources in splits.items():
        (out / target).mkdir(parents=True, exist_ok=True)
        for source in sources:
            prefix = source.split("/")[0]
            for path in list_images(connector / source):
                (out / target / f"{prefix}_{path.name}").symlink_to(path.resolve())
    return out


def shifted_rows(
    name: str, station_rows: list[dict], out: Path, settings: TrainingSettings, boards: int
) -> list[dict]:
    """One row per clean station bundle, measured on the shifted station at its own threshold."""
    crops = build_shifted(out / "data", name, boards)
    rows = []
    wanted = [row for row in station_rows if row["data_set"] == "station" and not row.get("error")]
    with bar(len(wanted), name) as progress:
        for station_row in wanted:
            method, connector = station_row["method"], station_row["connector"]
            row = {"data_set": name, "connector": connector, "method": method}
            try:
                bundle = out / "station" / "models" / method / connector / station_row["version"]
                data = pooled_test(crops / connector, out / name / "pooled" / connector)
                report = out / name / "reports" / method / connector
                provenance = {"bundle": str(bundle), "data": str(crops / connector)}
                metrics = evaluate_bundle(
                    bundle, load_connector_data(data, settings.holdout_fraction), report, provenance
                )
                row |= {
                    key: metrics.get(key)
                    for key in ("image_auroc", "image_aupr", "recall", "false_reject_rate")
                }
                row |= {
                    "version": station_row["version"],
                    "best_recall_at_0.5%_fr": best_recall(report / "scores.csv"),
                    "threshold_mode": station_row.get("threshold_mode"),
                    "scores_csv": str(report / "scores.csv"),
                }
            except Exception as exc:  # one failing connector must not stop the rest
                row["error"] = f"{type(exc).__name__}: {exc}".splitlines()[0]
                log.error("shifted row failed", data_set=name, connector=connector, **row)
            rows.append(row)
            progress.update()
    return rows
