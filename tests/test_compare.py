"""`compare` run as a user runs it: two detectors on two connectors of a small station.

J1 has KO crops in test/ (so a false-reject rate at full KO recall); J4 never has KO.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest
from detector_checks import cli

from trainer.detectors import DETECTORS
from trainer.synth.station import generate_station

KO_CONNECTOR = "J1"
OK_ONLY_CONNECTOR = "J4"
METHODS = ("patchcore", "padim")
FAST_TRAINING = "[training]\ninput_size = 64\ninput_size_max = 64\ncoreset_max = 300\n"


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def crops(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """DIR/crops with J1 (with KO) and J4 (OK only) of a generated 24-board station."""
    root = tmp_path_factory.mktemp("station")
    generate_station(root / "station", seed=0, boards=24, progress=False, workers=1)
    for cid in (KO_CONNECTOR, OK_ONLY_CONNECTOR):
        shutil.copytree(root / "station" / "crops" / cid, root / "crops" / cid)
    return root / "crops"


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "station.toml"
    path.write_text(FAST_TRAINING, encoding="utf-8")
    return path


@pytest.mark.slow
def test_compare_trains_each_method_on_each_connector_and_tabulates(
    crops: Path, config: Path, tmp_path: Path
) -> None:
    """One row per (method, connector) with in-range numbers, in compare.md and compare.csv."""
    out = tmp_path / "cmp"
    result = cli(
        "compare", "--data", crops, "--methods", ",".join(METHODS), "--config", config,
        "--out", out, "--runs", 10, cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    markdown = (out / "compare.md").read_text(encoding="utf-8")
    assert markdown.strip() in result.stdout
    rows = read_csv(out / "compare.csv")
    pairs = sorted((r["method"], r["connector"]) for r in rows)
    assert pairs == sorted((m, c) for m in METHODS for c in (KO_CONNECTOR, OK_ONLY_CONNECTOR))
    for method in METHODS:
        assert f"| {method} | mean (with KO) |" in markdown

    for row in rows:
        where = (row["method"], row["connector"])
        assert row["error"] == "", where
        assert float(row["ms_per_crop"]) > 0, where
        assert float(row["bundle_mb"]) > 0, where
        assert float(row["train_seconds"]) > 0, where
        assert 0.0 <= float(row["false_reject_rate"]) <= 1.0, where
        for key in ("pixel_auroc", "pro"):
            assert row[key] == "" or 0.0 <= float(row[key]) <= 1.0, (where, key)
        bundle = out / "models" / row["method"] / row["connector"] / row["version"]
        assert (bundle / "model.onnx").is_file(), where
        scores = read_csv(bundle / "report" / "scores.csv")
        ok = [float(s["score"]) for s in scores if s["label"] == "OK"]
        ko = [float(s["score"]) for s in scores if s["label"] == "KO"]
        if row["connector"] == OK_ONLY_CONNECTOR:
            assert not ko
            for key in ("frr_at_full_recall", "image_auroc", "image_aupr", "recall"):
                assert row[key] == "", (where, key)
        else:
            assert ko and ok
            for key in ("image_auroc", "image_aupr", "recall"):
                assert 0.0 <= float(row[key]) <= 1.0, (where, key)
            expected = sum(score >= min(ko) for score in ok) / len(ok)
            assert float(row["frr_at_full_recall"]) == pytest.approx(expected), where


def test_unknown_method_is_a_one_line_error_naming_the_allowed_ones(
    crops: Path, config: Path, tmp_path: Path
) -> None:
    """An unknown method stops the command before any training, and nothing is written."""
    out = tmp_path / "cmp"
    result = cli(
        "compare", "--data", crops, "--methods", "patchcore,nosuch", "--config", config,
        "--out", out, cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 2
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1 and "nosuch" in message
    for name in DETECTORS:
        assert name in message
    assert not out.exists()


def test_missing_data_folder_is_a_one_line_error(config: Path, tmp_path: Path) -> None:
    """A data folder that does not exist is named in a one-line error; nothing is written."""
    missing = tmp_path / "no-crops"
    result = cli(
        "compare", "--data", missing, "--methods", "padim", "--out", tmp_path / "cmp",
        cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 2
    assert str(missing) in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "cmp").exists()


def test_a_failing_pair_gets_a_row_with_its_error_and_exit_1(
    crops: Path, config: Path, tmp_path: Path
) -> None:
    """A connector without a test split fails for every method; each still gets its row."""
    data = tmp_path / "crops"
    shutil.copytree(crops / OK_ONLY_CONNECTOR / "train", data / "J9" / "train")
    out = tmp_path / "cmp"
    result = cli(
        "compare", "--data", data, "--methods", ",".join(METHODS), "--config", config,
        "--out", out, cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 1, result.stderr
    rows = read_csv(out / "compare.csv")
    assert [(r["method"], r["connector"]) for r in rows] == [(m, "J9") for m in METHODS]
    for row in rows:
        assert "test" in row["error"] and row["ms_per_crop"] == "", row
    assert "J9" in (out / "compare.md").read_text(encoding="utf-8")
