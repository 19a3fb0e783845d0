"""`robustness` run as a user runs it, on two connectors of small clean and shifted stations."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from detector_checks import cli

from trainer.datasets import list_images
from trainer.studies.robustness import adapted_data, ensure_station, station_header
from trainer.synth.station import generate_station

BOARDS = 40
CONNECTORS = ("J1", "J4")  # J1 has KO crops, J4 never has
FAST = ("--input-size", "64", "--input-size-max", "64", "--coreset-max", "300")


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def stations(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """OUT/stations with the clean and the mildly shifted 40-board stations of seed 0."""
    root = tmp_path_factory.mktemp("study") / "stations"
    for shift in ("none", "mild"):
        generate_station(root / shift, seed=0, boards=BOARDS, shift=shift, progress=False)
    return root


def test_adapted_data_learns_from_every_other_shifted_val_ok_and_calibrates_on_the_rest(
    stations: Path, tmp_path: Path
) -> None:
    shifted = stations / "mild" / "crops" / "J1"

    adapted = adapted_data(shifted, tmp_path / "J1")

    names = {
        split: {p.name for p in list_images(adapted / split)} for split in ("train/ok", "val/ok")
    }
    val_ok = list_images(shifted / "val" / "ok")
    calibration = {p.name for p in val_ok[::2]}
    learnt = {p.name for p in val_ok[1::2]}
    assert calibration and learnt
    assert names["val/ok"] == calibration
    assert names["train/ok"] == {p.name for p in list_images(shifted / "train" / "ok")} | learnt
    for split in ("val/ko", "test/ok", "test/ko"):
        linked = list_images(adapted / split)
        assert [p.name for p in linked] == [p.name for p in list_images(shifted / split)]
        assert all(p.is_symlink() and p.resolve().parent == shifted / split for p in linked)


def test_a_station_made_with_other_settings_is_refused_not_reused(stations: Path) -> None:
    assert ensure_station(stations, 0, BOARDS, "mild") == stations / "mild"
    assert (
        (stations / "mild" / "config.toml")
        .read_text()
        .startswith(station_header(0, BOARDS, "mild"))
    )

    with pytest.raises(ValueError, match="other settings"):
        ensure_station(stations, 1, BOARDS, "mild")


def test_robustness_refuses_no_activate_as_its_models_must_be_live_to_be_tested(
    tmp_path: Path,
) -> None:
    result = cli("robustness", "--out", tmp_path / "out", "--no-activate", cwd=tmp_path)

    assert result.returncode == 2
    assert "unrecognized arguments: --no-activate" in result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_robustness_command_tabulates_clean_shifted_adapted_and_global_models(
    stations: Path, tmp_path: Path
) -> None:
    out = stations.parent
    result = cli(
        "robustness", "--out", out, "--boards", BOARDS, "--shifts", "mild",
        "--connectors", ",".join(CONNECTORS), "--global-model", *FAST, cwd=tmp_path,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    rows = read_csv(out / "robustness.csv")
    keys = [(r["shift"], r["model"], r["connector"]) for r in rows]
    assert keys == [
        ("none", "clean", "J1"), ("none", "clean", "J4"),
        ("mild", "clean", "J1"), ("mild", "adapted", "J1"),
        ("mild", "clean", "J4"), ("mild", "adapted", "J4"),
    ]  # fmt: skip
    for row in rows:
        assert not row["error"]
        assert 0 <= float(row["false_reject_rate"]) <= 1
        assert (row["image_auroc"] == "") == (row["connector"] == "J4")  # no KO, no AUROC
    assert 0.5 <= float(rows[0]["image_auroc"]) <= 1
    markdown = (out / "robustness.md").read_text(encoding="utf-8")
    for condition in ("| none | clean | mean (with KO) |", "| mild | adapted | mean (with KO) |"):
        assert condition in markdown
    assert (out / "reports" / "mild" / "J1" / "metrics.json").is_file()

    both = read_csv(out / "global.csv")
    assert [(r["model"], r["connector"]) for r in both] == [
        ("per-connector", "J1"), ("per-connector", "J4"),
        ("global", "all-connectors"), ("global", "J1"), ("global", "J4"),
    ]  # fmt: skip
    assert all(0 <= float(r["false_reject_rate"]) <= 1 for r in both)
    pooled = len(list_images(out / "global" / "data" / "all-connectors" / "test" / "ok"))
    singles = sum(
        len(list_images(stations / "none" / "crops" / c / "test" / "ok")) for c in CONNECTORS
    )
    assert pooled == singles
    assert "| global | mean (with KO) |" in (out / "global.md").read_text(encoding="utf-8")
