"""`train`, `train-all` and `evaluate` run as a user runs them, on a small generated station.

Every command is a separate `python -m edge_agent.cli` process with fast training settings
(64-pixel model input, small coreset). J1 has KO crops in val/ and test/; J4 never has KO.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pytest
from detector_checks import cli

from edge_agent.contracts.bundle import read_manifest, verify_bundle
from trainer.datasets import list_images
from trainer.evaluation.report import REQUIRED_KEYS
from trainer.evaluation.synthetic_defects import EXAMPLES_FILE, KINDS
from trainer.synth.station import generate_station

pytestmark = pytest.mark.slow

KO_CONNECTOR = "J1"  # val/ko and test/ko crops
OK_ONLY_CONNECTOR = "J4"  # no KO anywhere
BOARDS = 40  # 25 train, 5 val, 10 test boards
FAST_TRAINING = "[training]\ninput_size = 64\ninput_size_max = 64\ncoreset_max = 300\n"
REPORT_IMAGES = ("score_histogram.png", "roc_curve.png", "pr_curve.png")
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def write_config(path: Path, extra: str = "") -> Path:
    """A station config whose [training] section holds the fast settings (and `extra` lines)."""
    path.write_text(FAST_TRAINING + extra, encoding="utf-8")
    return path


def read_scores(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


def snapshot(models: Path) -> dict[str, str | None]:
    """Every entry under `models`, hidden ones included, links not followed -> link target."""
    entries: dict[str, str | None] = {}
    for folder, dirs, files in os.walk(models):
        for name in dirs + files:
            path = Path(folder, name)
            entries[str(path.relative_to(models))] = (
                os.readlink(path) if path.is_symlink() else None
            )
    return entries


def leftovers(models: Path) -> list[str]:
    """Staging folders and temporary files that a finished command must not leave behind."""
    return [
        name
        for name in snapshot(models)
        if Path(name).name.startswith(".staging-") or Path(name).name.endswith(".tmp")
    ]


def assert_report(report: Path, n_test_ok: int, n_test_ko: int) -> dict:
    """The report folder holds every file and every required key; returns its metrics."""
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    assert set(REQUIRED_KEYS) <= set(metrics)
    assert (metrics["n_test_ok"], metrics["n_test_ko"]) == (n_test_ok, n_test_ko)
    assert metrics["threshold"] == 1.0
    assert 0.0 <= metrics["false_reject_rate"] <= 1.0
    assert metrics["n_train"] > 0 and metrics["train_seconds"] > 0

    with (report / "scores.csv").open(newline="") as handle:
        assert next(csv.reader(handle)) == ["path", "label", "score", "predicted"]
    rows = read_scores(report / "scores.csv")
    assert len(rows) == n_test_ok + n_test_ko
    assert sorted(r["label"] for r in rows) == ["KO"] * n_test_ko + ["OK"] * n_test_ok
    for row in rows:
        assert row["predicted"] == ("KO" if float(row["score"]) >= 1.0 else "OK")

    for name in REPORT_IMAGES:
        assert (report / name).read_bytes().startswith(PNG_MAGIC), name
        assert cv2.imread(str(report / name)) is not None, name
    visuals = sorted((report / "visuals").iterdir())
    assert visuals and len(visuals) % 3 == 0
    for kind in ("original", "heatmap", "overlay"):
        assert len([p for p in visuals if p.name.endswith(f"_{kind}.png")]) == len(visuals) // 3
    assert not list(report.glob(".*.tmp"))
    return metrics


def count(folder: Path) -> int:
    return len(list_images(folder))


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DIR/crops with two connectors of a generated station: J1 (with KO) and J4 (OK only)."""
    root = tmp_path_factory.mktemp("station")
    generate_station(root / "station", seed=0, boards=BOARDS, progress=False, workers=1)
    for cid in (KO_CONNECTOR, OK_ONLY_CONNECTOR):
        shutil.copytree(root / "station" / "crops" / cid, root / "crops" / cid)
    return root / "crops"


@pytest.fixture(scope="module")
def fast_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config(tmp_path_factory.mktemp("config") / "edge.toml")


@dataclass(frozen=True)
class Trained:
    """The outcome of `train` on J1: the process, the models folder and the version made."""

    result: subprocess.CompletedProcess[str]
    models: Path
    version: str


@pytest.fixture(scope="module")
def trained(crops: Path, fast_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Trained:
    """`edge-inspect train` of J1 into a fresh models folder."""
    work = tmp_path_factory.mktemp("train")
    models = work / "models"
    result = cli(
        "train", "--data", crops / KO_CONNECTOR, "--out", models, "--config", fast_config, cwd=work
    )
    assert result.returncode == 0, result.stderr
    versions = [p.name for p in (models / KO_CONNECTOR).iterdir() if not p.name.startswith(".")]
    versions.remove("active")
    assert len(versions) == 1, versions
    return Trained(result, models, versions[0])


def test_train_installs_an_active_checked_bundle_with_a_full_report(
    trained: Trained, crops: Path
) -> None:
    """`train` writes <connector>/<version>/, switches `active` to it and reports on test/."""
    root = trained.models / KO_CONNECTOR
    bundle = root / trained.version
    active = root / "active"
    assert f"{KO_CONNECTOR} {trained.version}" in trained.result.stdout

    assert active.is_symlink() and os.readlink(active) == trained.version
    assert active.resolve() == bundle.resolve()
    assert leftovers(trained.models) == []
    assert (bundle / "model.onnx").is_file() and (bundle / "manifest.json").is_file()

    manifest = verify_bundle(bundle)
    assert read_manifest(active) == manifest
    assert (manifest.connector, manifest.version) == (KO_CONNECTOR, trained.version)
    assert manifest.model_input_size == 64
    first = list_images(crops / KO_CONNECTOR / "train" / "ok")[0]
    height, width = cv2.imread(str(first)).shape[:2]
    assert (manifest.input.height, manifest.input.width) == (height, width)
    assert manifest.training.n_train == count(crops / KO_CONNECTOR / "train" / "ok")
    assert manifest.calibration.mode == "ko"

    data = crops / KO_CONNECTOR
    metrics = assert_report(
        bundle / "report", count(data / "test" / "ok"), count(data / "test" / "ko")
    )
    assert metrics["n_train"] == manifest.training.n_train
    for key in ("image_auroc", "image_aupr", "f1", "recall", "pixel_auroc", "pro"):
        assert isinstance(metrics[key], float) and 0.0 <= metrics[key] <= 1.0, key
    assert manifest.metrics["image_auroc"] == metrics["image_auroc"]
    # The estimate without KO: defects pasted on the test OK, scored by the bundle.
    by_kind = metrics["synthetic_by_kind"]
    assert list(by_kind) == list(KINDS)
    assert all(0.0 <= value <= 1.0 for value in by_kind.values())
    assert metrics["synthetic_recall"] == pytest.approx(np.mean(list(by_kind.values())), abs=1e-3)
    assert (bundle / "report" / EXAMPLES_FILE).read_bytes().startswith(PNG_MAGIC)
    assert f"recall on synthetic defects {metrics['synthetic_recall']}" in trained.result.stdout


def test_train_all_trains_every_connector_and_prints_a_summary(
    crops: Path, fast_config: Path, tmp_path: Path
) -> None:
    """`train-all` installs one active bundle per connector folder and tabulates them."""
    models = tmp_path / "models"
    result = cli(
        "train-all", "--data", crops, "--out", models, "--config", fast_config, cwd=tmp_path
    )

    assert result.returncode == 0, result.stderr
    table = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert table[0].split("|")[1].strip() == "connector"
    rows = {line.split("|")[1].strip(): line for line in table[2:]}
    assert set(rows) == {KO_CONNECTOR, OK_ONLY_CONNECTOR}
    assert (models / "summary.md").read_text(encoding="utf-8").strip() in result.stdout
    with (models / "summary.csv").open(newline="") as handle:
        summary = {row["connector"]: row for row in csv.DictReader(handle)}
    assert set(summary) == {KO_CONNECTOR, OK_ONLY_CONNECTOR}
    assert leftovers(models) == []

    for cid in (KO_CONNECTOR, OK_ONLY_CONNECTOR):
        active = models / cid / "active"
        assert active.is_symlink(), cid
        manifest = verify_bundle(active)
        assert manifest.connector == cid
        assert summary[cid]["version"] == manifest.version == os.readlink(active)
        assert summary[cid]["error"] == ""
        assert manifest.version in rows[cid]

    data = crops / OK_ONLY_CONNECTOR
    metrics = assert_report(
        models / OK_ONLY_CONNECTOR / "active" / "report", count(data / "test" / "ok"), 0
    )
    calibration = verify_bundle(models / OK_ONLY_CONNECTOR / "active").calibration
    assert calibration.mode == "ok-only"
    assert "out-of-fold" in calibration.guarantee  # PatchCore cross-fits: a fit takes seconds
    for key in ("image_auroc", "image_aupr", "recall"):
        assert metrics[key] is None, key  # undefined without KO, written as null
    assert 0.0 <= float(summary[OK_ONLY_CONNECTOR]["synthetic_recall"]) <= 1.0


def test_evaluate_reproduces_the_training_report_through_onnxruntime(
    trained: Trained, crops: Path, tmp_path: Path
) -> None:
    """`evaluate` on the same crops gives the scores training recorded (both via onnxruntime)."""
    bundle = trained.models / KO_CONNECTOR / "active"
    out = tmp_path / "report"
    data = crops / KO_CONNECTOR
    before = snapshot(trained.models)

    result = cli("evaluate", "--bundle", bundle, "--data", data, "--out", out, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert str(out) in result.stdout
    metrics = assert_report(out, count(data / "test" / "ok"), count(data / "test" / "ko"))
    recorded = json.loads((bundle / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert (metrics["connector"], metrics["version"]) == (KO_CONNECTOR, trained.version)
    assert metrics["n_train"] == recorded["n_train"]
    for key in ("image_auroc", "image_aupr", "f1", "false_reject_rate", "recall"):
        assert metrics[key] == pytest.approx(recorded[key], abs=1e-6), key

    evaluated = read_scores(out / "scores.csv")
    trained_rows = read_scores(bundle / "report" / "scores.csv")
    assert [(r["path"], r["label"]) for r in evaluated] == [
        (r["path"], r["label"]) for r in trained_rows
    ]
    np.testing.assert_allclose(
        [float(r["score"]) for r in evaluated],
        [float(r["score"]) for r in trained_rows],
        atol=1e-4,
    )
    assert snapshot(trained.models) == before  # evaluating changes no bundle


@dataclass(frozen=True)
class BadInput:
    """A broken training input: the data folder, the config, and what stderr must name."""

    data: Path
    config: Path
    named: tuple[str, ...]


def _connector_copy(crops: Path, work: Path) -> Path:
    """A private copy of J1's crops, named J1 so it trains into the existing J1 models."""
    target = work / "data" / KO_CONNECTOR
    shutil.copytree(crops / KO_CONNECTOR, target)
    return target


def _missing_train(crops: Path, work: Path) -> BadInput:
    data = _connector_copy(crops, work)
    shutil.rmtree(data / "train")
    return BadInput(data, write_config(work / "edge.toml"), (str(data / "train" / "ok"),))


def _empty_train_ok(crops: Path, work: Path) -> BadInput:
    data = _connector_copy(crops, work)
    for path in (data / "train" / "ok").iterdir():
        path.unlink()
    return BadInput(data, write_config(work / "edge.toml"), (str(data / "train" / "ok"),))


def _truncated_png(crops: Path, work: Path) -> BadInput:
    data = _connector_copy(crops, work)
    victim = list_images(data / "train" / "ok")[3]
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    return BadInput(data, write_config(work / "edge.toml"), (str(victim),))


def _mixed_sizes(crops: Path, work: Path) -> BadInput:
    data = _connector_copy(crops, work)
    height, width = cv2.imread(str(list_images(data / "train" / "ok")[0])).shape[:2]
    odd = data / "train" / "ok" / "b9999.png"
    other = np.random.default_rng(0).integers(0, 255, (height + 4, width - 6, 3), np.uint8)
    assert cv2.imwrite(str(odd), other)
    return BadInput(data, write_config(work / "edge.toml"), (str(odd),))


def _roi_outside_input(crops: Path, work: Path) -> BadInput:
    data = _connector_copy(crops, work)
    roi = work / "roi.json"
    roi.write_text(json.dumps({KO_CONNECTOR: [100, 120, 70, 90]}), encoding="utf-8")
    config = write_config(work / "edge.toml", 'roi_file = "roi.json"\n')
    return BadInput(data, config, (str(roi.resolve()), repr(KO_CONNECTOR)))


def _unknown_config_key(crops: Path, work: Path) -> BadInput:
    data = _connector_copy(crops, work)
    config = write_config(work / "edge.toml", "coreset_maximum = 300\n")
    return BadInput(data, config, (str(config), "training.coreset_maximum"))


@pytest.mark.parametrize(
    "make",
    [
        _missing_train,
        _empty_train_ok,
        _truncated_png,
        _mixed_sizes,
        _roi_outside_input,
        _unknown_config_key,
    ],
    ids=lambda make: make.__name__.lstrip("_"),
)
def test_bad_input_fails_with_a_named_cause_and_writes_nothing(
    make: Callable[[Path, Path], BadInput], trained: Trained, crops: Path, tmp_path: Path
) -> None:
    """A broken input exits non-zero naming the culprit; the models folder stays as it was."""
    models = tmp_path / "models"
    shutil.copytree(trained.models, models, symlinks=True)
    bad = make(crops, tmp_path)
    before = snapshot(models)

    result = cli("train", "--data", bad.data, "--out", models, "--config", bad.config, cwd=tmp_path)

    assert result.returncode != 0
    for name in bad.named:
        assert name in result.stderr, (name, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert snapshot(models) == before
    assert os.readlink(models / KO_CONNECTOR / "active") == trained.version
    assert leftovers(models) == []


def test_train_all_on_a_missing_data_folder_names_it(fast_config: Path, tmp_path: Path) -> None:
    """`train-all` pointed at no folder says so in one line, without a traceback."""
    missing = tmp_path / "no-such-crops"
    models = tmp_path / "models"
    result = cli(
        "train-all", "--data", missing, "--out", models, "--config", fast_config, cwd=tmp_path
    )

    assert result.returncode != 0
    assert str(missing) in result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    assert not models.exists()


def _rewrite_in_other_formats(folder: Path) -> dict[str, int]:
    """Rewrite a folder's BGR crops as gray, BGRA and 16-bit PNGs in turn; counts per format."""
    formats = {"gray": 0, "bgra": 0, "16-bit": 0}
    for index, path in enumerate(list_images(folder)):
        image = cv2.imread(str(path))
        kind = list(formats)[index % 3]
        if kind == "gray":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
        elif kind == "bgra":
            image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
        else:
            image = image.astype(np.uint16) * 257
        assert cv2.imwrite(str(path), image)
        formats[kind] += 1
    return formats


def test_gray_rgba_and_16_bit_training_crops_are_accepted(
    crops: Path, fast_config: Path, tmp_path: Path
) -> None:
    """Crops saved as gray, RGBA or 16-bit PNG train like 8-bit colour ones."""
    data = tmp_path / "data" / KO_CONNECTOR
    shutil.copytree(crops / KO_CONNECTOR, data)
    formats = _rewrite_in_other_formats(data / "train" / "ok")
    kinds = set()
    for path in list_images(data / "train" / "ok"):
        image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        kinds.add((image.ndim, image.shape[2] if image.ndim == 3 else 1, image.dtype.itemsize))
    assert kinds == {(2, 1, 1), (3, 4, 1), (3, 3, 2)}
    assert min(formats.values()) > 0

    models = tmp_path / "models"
    result = cli("train", "--data", data, "--out", models, "--config", fast_config, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    manifest = verify_bundle(models / KO_CONNECTOR / "active")
    assert manifest.training.n_train == sum(formats.values())
    height, width = cv2.imread(str(list_images(data / "test" / "ok")[0])).shape[:2]
    assert (manifest.input.height, manifest.input.width) == (height, width)
    assert leftovers(models) == []


def test_a_crop_larger_than_the_input_gets_its_own_side_and_its_roi_scaled(
    crops: Path, tmp_path: Path
) -> None:
    """J4 (128x110 px) with `input_size` 32 and `input_size_max` 96 is trained at 64 px (its own
    119 px rounded down to 64); its ROI, written in the 32 px frame, weighs the same part of the
    crop; the report says why."""
    roi = tmp_path / "roi.json"
    roi.write_text(json.dumps({OK_ONLY_CONNECTOR: [8, 24, 4, 28]}), encoding="utf-8")
    config = tmp_path / "edge.toml"
    config.write_text(
        "[training]\ninput_size = 32\ninput_size_max = 96\ncoreset_max = 300\n"
        'roi_file = "roi.json"\n',
        encoding="utf-8",
    )
    models = tmp_path / "models"
    data = crops / OK_ONLY_CONNECTOR
    result = cli("train", "--data", data, "--out", models, "--config", config, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    bundle = models / OK_ONLY_CONNECTOR / "active"
    manifest = verify_bundle(bundle)
    assert manifest.model_input_size == 64
    assert manifest.training.params["input_size"] == 64
    weights = np.load(bundle / "weight_mask.npy")
    high = np.argwhere(weights == weights.max())
    assert weights.shape == (64, 64)
    assert (high.min(axis=0).tolist(), high.max(axis=0).tolist()) == ([16, 8], [47, 55])
    metrics = json.loads((bundle / "report" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["input_size"] == 64
    assert "crop 128x110 px" in metrics["input_size_reason"]
    bank = re.search(r"memory bank (\d+) of (\d+) patches", metrics["input_size_reason"])
    assert bank is not None and 0 < int(bank[1]) <= 300 * (64 // 32) ** 2  # the scaled cap
    assert f"model input 64 px: {metrics['input_size_reason']}" in result.stdout
