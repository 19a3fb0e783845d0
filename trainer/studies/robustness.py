"""Robustness to a capture-domain shift: clean models on shifted photos, then adapted models.

Stations live in `OUT/stations/<shift>`, all generated with the same seed and board count, so
they share the board layout and the (always clean) train split; `--shift` changes only the
val and test photos. For each connector:

- `none / clean`: trained and calibrated on the clean station, tested on its clean test set;
- `<shift> / clean`: the same bundle, thresholds unchanged, on the shifted test set;
- `<shift> / adapted`: retrained on the clean train OK plus every other shifted val OK, and
  calibrated on the others with the shifted val KO, then tested on the shifted test set.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import structlog

from edge_agent.contracts.bundle import ACTIVE_LINK, connector_dir
from trainer.datasets import DataError, list_images, load_connector_data
from trainer.evaluation.scoring import evaluate_bundle
from trainer.progress import bar
from trainer.settings import TrainingSettings
from trainer.studies.compare import select_connectors
from trainer.synth.station import generate_station, station_comment
from trainer.synth.variation import DOMAINS
from trainer.train_connector import REPORTED_METRICS, reported_metrics, train_connector

log = structlog.get_logger()

SHIFTS = tuple(name for name in DOMAINS if name != "none")
CALIBRATION_EVERY = 2  # every 2nd shifted val OK (by name) calibrates; the rest joins training
COLUMNS = ("shift", "model", "connector", *REPORTED_METRICS, "error")
LINKED_SPLITS = ("train/ok", "val/ko", "test/ok", "test/ko", "test/ko_masks")


def station_header(seed: int, boards: int, shift: str) -> str:
    """The first line `synth` writes into a station's config.toml."""
    return f"# {station_comment(seed, boards, shift)}"


def ensure_station(root: Path, seed: int, boards: int, shift: str) -> Path:
    """`root/<shift>`, generated unless a complete station of the same settings is there."""
    folder = root / shift
    config = folder / "config.toml"
    expected = station_header(seed, boards, shift)
    if config.is_file():
        first = config.read_text(encoding="utf-8").splitlines()[:1]
        if first != [expected]:
            raise DataError(f"{folder}: made with other settings ({first}); expected {expected}")
        return folder
    if folder.exists():  # config.toml is written last: this is an interrupted generation
        shutil.rmtree(folder)
    log.info("generating station", shift=shift, seed=seed, boards=boards)
    generate_station(folder, seed=seed, boards=boards, shift=shift)
    return folder


def _link(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    target.symlink_to(source.resolve())


def adapted_data(shifted: Path, out: Path) -> Path:
    """A connector folder (symlinks) for adaptation: clean train OK + every other shifted val OK
    to learn from, the rest and the shifted val KO to calibrate on, and
    the shifted test set."""
    if out.exists():
        shutil.rmtree(out)
    for split in LINKED_SPLITS:
        for path in list_images(shifted / split):
            _link(path, out / split / path.name)
    for index, path in enumerate(list_images(shifted / "val" / "ok")):
        split = "val/ok" if index % CALIBRATION_EVERY == 0 else "train/ok"
        _link(path, out / split / path.name)
    return out


def _guarded(key: tuple[str, str, str], work: Callable[..., dict], *args: object) -> dict:
    """One study row from `work(*args)`'s metrics; an error becomes the row's error."""
    shift, model, connector = key
    try:
        metrics = work(*args)
        return {"shift": shift, "model": model, "connector": connector, **reported_metrics(metrics)}
    except Exception as exc:  # one failing connector must not stop the study
        error = f"{type(exc).__name__}: {exc}".splitlines()[0]
        log.error(
            "robustness row failed", shift=shift, model=model, connector=connector, error=error
        )
        return {"shift": shift, "model": model, "connector": connector, "error": error}


def _evaluate(
    bundle: Path | None, data_dir: Path, report: Path, settings: TrainingSettings
) -> dict:
    """A bundle's metrics on a data set's test split, with the bundle's own threshold."""
    if bundle is None:
        raise DataError(f"{data_dir.name}: no clean model to evaluate (its training failed)")
    data = load_connector_data(data_dir, settings.holdout_fraction)
    return evaluate_bundle(bundle, data, report, {"data": str(data_dir)})


def _train(data_dir: Path, models: Path, settings: TrainingSettings, roi: tuple | None) -> dict:
    return train_connector(data_dir, models, settings, roi=roi).metrics


def _adapt(shifted: Path, work: Path, models: Path, settings: TrainingSettings, roi) -> dict:
    return _train(adapted_data(shifted, work), models, settings, roi)


def study(
    out: Path,
    seed: int,
    boards: int,
    shifts: list[str],
    settings: TrainingSettings,
    rois: dict,
    connectors: str | None = None,
) -> list[dict]:
    """Run the whole study; one row per (shift, model, connector)."""
    clean = ensure_station(out / "stations", seed, boards, "none")
    folders = select_connectors(clean / "crops", connectors)
    stations = {shift: ensure_station(out / "stations", seed, boards, shift) for shift in shifts}
    for previous in ("models", "data", "reports"):  # no stale bundle may stand in for a new one
        shutil.rmtree(out / previous, ignore_errors=True)
    clean_models = out / "models" / "none"
    rows = []
    with bar(len(folders) * (1 + 2 * len(shifts)), "robustness") as progress:
        for folder in folders:
            roi = rois.get(folder.name)
            rows.append(
                _guarded(
                    ("none", "clean", folder.name), _train, folder, clean_models, settings, roi
                )
            )
            progress.update()
        for shift, station in stations.items():
            for folder in folders:
                name, shifted = folder.name, station / "crops" / folder.name
                active = connector_dir(clean_models, name) / ACTIVE_LINK
                bundle = active if active.exists() else None
                report = out / "reports" / shift / name
                rows.append(
                    _guarded((shift, "clean", name), _evaluate, bundle, shifted, report, settings)
                )
                progress.update()
                work, models = out / "data" / shift / name, out / "models" / shift
                rows.append(
                    _guarded(
                        (shift, "adapted", name),
                        _adapt,
                        shifted,
                        work,
                        models,
                        settings,
                        rois.get(name),
                    )
                )
                progress.update()
    return rows
