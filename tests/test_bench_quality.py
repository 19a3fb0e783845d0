"""`bench-quality`: the real-image split as published, and the command run on tiny data."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from detector_checks import cli

from trainer.evaluation.synthetic_defects import KINDS
from trainer.studies.quality import CELL_TRAIN_OK, build_cells, cell_split

FAST_TRAINING = "[training]\ninput_size = 64\ninput_size_max = 64\ncoreset_max = 300\n"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config whose [training] is small and fast."""
    path = tmp_path / "fast.toml"
    path.write_text(FAST_TRAINING, encoding="utf-8")
    return path


def fake_cells(count: int = 700) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A stand-in for `elpv_dataset.utils.load_dataset()`: gray cells, probabilities, types."""
    rng = np.random.default_rng(1)
    images = rng.integers(0, 255, (count, 12, 12), dtype=np.uint8)
    probabilities = rng.choice([0.0, 1 / 3, 2 / 3, 1.0], count, p=[0.6, 0.1, 0.05, 0.25])
    types = rng.choice(["mono", "poly"], count)
    return images, probabilities, types


def test_cell_split_is_the_published_mono_split_and_leaves_other_cells_out() -> None:
    _, probabilities, types = fake_cells()
    ok = np.flatnonzero((types == "mono") & (probabilities == 0))
    np.random.seed(0)
    expected_train = sorted(np.random.choice(ok, CELL_TRAIN_OK, replace=False))

    split = cell_split(probabilities, types)

    assert split["train/ok"].tolist() == expected_train
    assert sorted([*split["train/ok"], *split["test/ok"]]) == ok.tolist()
    assert (probabilities[split["test/ko"]] == 1).all()
    assert len(split["test/ko"]) == np.sum((types == "mono") & (probabilities == 1))
    chosen = np.concatenate(list(split.values()))
    assert (types[chosen] == "mono").all()
    assert np.isin(probabilities[chosen], [0.0, 1.0]).all()


def test_build_cells_writes_the_crop_layout_once(tmp_path: Path) -> None:
    calls = []

    def loader() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        calls.append(1)
        return fake_cells()

    folder = build_cells(tmp_path, loader)
    again = build_cells(tmp_path, loader)

    assert folder == again == tmp_path / "cells"
    assert len(calls) == 1
    assert len(list((folder / "train" / "ok").glob("*.png"))) == CELL_TRAIN_OK
    assert list((folder / "test" / "ko").glob("*.png"))


@pytest.mark.slow
def test_bench_quality_tabulates_a_row_per_connector_and_method(
    tmp_path: Path, config: Path
) -> None:
    out = tmp_path / "bq"

    result = cli(
        "bench-quality", "--data-sets", "station", "--boards", 24, "--connectors", "J1,J4",
        "--methods", "patchcore", "--config", config, "--out", out, "--runs", 3, cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert (out / "quality.md").read_text(encoding="utf-8").strip() in result.stdout
    with (out / "quality.csv").open(newline="") as handle:
        rows = {row["connector"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["J1", "J4"]
    for row in rows.values():
        assert (row["data_set"], row["method"], row["error"]) == ("station", "patchcore", "")
        assert row["threshold_mode"] in ("ko", "ok-only")
        assert float(row["ms_per_crop"]) > 0 and float(row["bundle_mb"]) > 0
        assert 0.0 <= float(row["false_reject_rate"]) <= 1.0
        assert 0.0 < float(row["synthetic_recall"]) <= 1.0
        assert [part.split()[0] for part in row["synthetic_by_kind"].split(", ")] == list(KINDS)
        strip = out / "station" / "synthetic" / f"patchcore_{row['connector']}.png"
        assert cv2.imread(str(strip)).shape[0] >= 160
    assert 0.0 <= float(rows["J1"]["best_recall_at_0.5%_fr"]) <= 1.0  # J1 has test KO
    assert rows["J4"]["best_recall_at_0.5%_fr"] == ""  # J4 never has KO
    machine = json.loads((out / "machine.json").read_text(encoding="utf-8"))
    assert machine["cpus"] >= 1 and f"machine: {json.dumps(machine)}" in result.stdout


def test_bench_quality_refuses_an_unknown_data_set_before_any_work(tmp_path: Path) -> None:
    result = cli("bench-quality", "--data-sets", "mvtec", "--out", tmp_path / "bq", cwd=tmp_path)

    assert result.returncode == 2
    assert "--data-sets: unknown ['mvtec']" in result.stderr
    assert not (tmp_path / "bq").exists()


def write_user_folder(root: Path, rng: np.random.Generator) -> Path:
    """One connector's crops in the `--data` layout; a few test images at another size."""
    folder = root / "my connector"
    for split, count in (("train/ok", 24), ("test/ok", 8), ("test/ko", 6)):
        (folder / split).mkdir(parents=True)
        for index in range(count):
            image = np.full((40, 56), 120, np.uint8) + rng.integers(0, 12, (40, 56), np.uint8)
            if split == "test/ko":
                cv2.circle(image, (28, 20), 9, 255, -1)
            if split.startswith("test") and index % 3 == 0:
                image = cv2.resize(image, (84, 60))
            cv2.imwrite(str(folder / split / f"{index:03d}.jpg"), image)
    return folder


@pytest.mark.slow
def test_bench_quality_on_a_users_folder_of_mixed_sizes(tmp_path: Path, config: Path) -> None:
    folder = write_user_folder(tmp_path, np.random.default_rng(3))
    out = tmp_path / "bq"

    result = cli(
        "bench-quality", "--data", folder, "--methods", "patchcore", "--config", config,
        "--out", out, "--runs", 2, "--line", "--line-runs", 3, cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    with (out / "quality.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(row["data_set"], row["method"], row["error"]) for row in rows] == [
        ("my-connector", "patchcore", "")
    ]
    assert float(rows[0]["image_auroc"]) > 0.9  # a bright disc on a flat crop
    assert rows[0]["best_recall_at_0.5%_fr"] != ""
    copy = out / "data" / "user" / "my-connector"
    sizes = {cv2.imread(str(p)).shape[:2] for p in copy.glob("*/*/*.png")}
    assert sizes == {(40, 56)}  # resized to train/ok's size
    assert len(list((copy / "test" / "ko").glob("*.png"))) == 6
    with (out / "line.csv").open(newline="") as handle:
        (line,) = list(csv.DictReader(handle))
    # 4 test OK a day are far too few to recalibrate on: day two keeps the bundle's threshold.
    assert (line["data_set"], line["runs"], line["recalibrated_runs"]) == ("my-connector", "3", "0")
    assert float(line["day2_threshold"]) == 1.0
    assert 0.0 <= float(line["day1_recall"]) <= 1.0 and 0.0 <= float(line["day2_recall"]) <= 1.0
    assert cv2.imread(str(out / "line.png")) is not None


def test_bench_quality_refuses_a_folder_without_training_images(tmp_path: Path) -> None:
    (tmp_path / "crops" / "test" / "ok").mkdir(parents=True)

    result = cli(
        "bench-quality", "--data", tmp_path / "crops", "--out", tmp_path / "bq", cwd=tmp_path
    )

    assert result.returncode != 0
    assert "train/ok: no OK training images" in result.stderr
    assert not (tmp_path / "bq" / "quality.csv").exists()


@pytest.mark.slow
def test_bench_quality_judges_a_shifted_station_with_the_clean_models(
    tmp_path: Path, config: Path
) -> None:
    out = tmp_path / "bq"

    result = cli(
        "bench-quality", "--data-sets", "station-mild", "--boards", 24, "--shifted-boards", 40,
        "--connectors", "J1", "--methods", "patchcore", "--config", config, "--out", out,
        "--runs", 2, "--line", "--line-runs", 2, cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    with (out / "quality.csv").open(newline="") as handle:
        rows = {row["data_set"]: row for row in csv.DictReader(handle)}
    assert sorted(rows) == ["station", "station-mild"]  # the clean models, then their shift
    shifted = rows["station-mild"]
    assert (shifted["connector"], shifted["error"]) == ("J1", "")
    pooled = out / "station-mild" / "pooled" / "J1"
    crops = out / "data" / "station-mild-40" / "crops" / "J1"
    for split in ("ok", "ko"):  # val and test of the shifted station, nothing else
        expected = len(list((crops / "val" / split).glob("*.png"))) + len(
            list((crops / "test" / split).glob("*.png"))
        )
        assert len(list((pooled / "test" / split).iterdir())) == expected > 0
    assert 0.0 <= float(shifted["false_reject_rate"]) <= 1.0
    assert 0.0 <= float(shifted["best_recall_at_0.5%_fr"]) <= 1.0
    report = out / "station-mild" / "reports" / "patchcore" / "J1"
    (bundle,) = (out / "station" / "models" / "patchcore" / "J1").glob("20*")  # the clean model
    metrics = json.loads((report / "metrics.json").read_text(encoding="utf-8"))
    assert Path(metrics["bundle"]) == bundle
    with (report / "scores.csv").open(newline="") as handle:
        assert len(list(csv.DictReader(handle))) == sum(
            len(list((pooled / "test" / split).iterdir())) for split in ("ok", "ko")
        )
    with (out / "line.csv").open(newline="") as handle:
        lines = {row["data_set"]: row for row in csv.DictReader(handle)}
    assert sorted(lines) == ["station", "station-mild"]
    assert 0.0 <= float(lines["station-mild"]["day1_false_reject"]) <= 1.0
