"""The synthetic inspection station: layout, labels, crops and config, the same for a seed."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_agent.cli import main
from trainer.settings import load_config
from trainer.synth.defects import KO_KINDS
from trainer.synth.plan import plan_boards, split_sizes
from trainer.synth.station import StationSummary, generate_station

BOARDS = 24
SEED = 3
CONNECTORS = {f"J{i}" for i in range(1, 10)}


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, StationSummary]:
    out = tmp_path_factory.mktemp("station")
    return out, generate_station(out, seed=SEED, boards=BOARDS, progress=False, workers=1)


@pytest.fixture(scope="module")
def station(generated: tuple[Path, StationSummary]) -> Path:
    return generated[0]


@pytest.fixture(scope="module")
def labels(station: Path) -> list[dict]:
    return json.loads((station / "boards" / "labels.json").read_text())


@pytest.fixture(scope="module")
def from_cli(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same station again, through the command line and two worker processes."""
    out = tmp_path_factory.mktemp("again")
    argv = ["synth", "--out", str(out), "--seed", str(SEED), "--boards", str(BOARDS)]
    assert main([*argv, "--workers", "2"]) == 0
    return out


def files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_same_seed_gives_the_same_labels_and_identical_files(station: Path, from_cli: Path) -> None:
    first, second = files(station / "boards"), files(from_cli / "boards")
    assert first.keys() == second.keys()
    assert first["labels.json"] == second["labels.json"]
    assert files(station / "crops") == files(from_cli / "crops")
    assert first == second


def test_another_seed_gives_another_station(tmp_path: Path, station: Path) -> None:
    generate_station(tmp_path, seed=SEED + 1, boards=10, progress=False, workers=1)
    boxes = {cid: c.box for cid, c in load_config(tmp_path / "config.toml").connectors.items()}
    assert boxes != {
        cid: c.box for cid, c in load_config(station / "config.toml").connectors.items()
    }


def test_labels_have_one_entry_per_board_image(station: Path, labels: list[dict]) -> None:
    assert len(labels) == BOARDS
    sizes = split_sizes(BOARDS)
    for split, count in sizes.items():
        assert sum(entry["split"] == split for entry in labels) == count
    for entry in labels:
        assert set(entry) == {"image", "split", "connectors"}
        assert (station / "boards" / entry["image"]).is_file()
        assert set(entry["connectors"]) == CONNECTORS
        for verdict in entry["connectors"].values():
            assert set(verdict) == {"label", "kind"}
            if verdict["label"] == "OK":
                assert verdict["kind"] is None
            else:
                assert verdict["label"] == "KO" and verdict["kind"] in KO_KINDS
        if entry["split"] == "train":
            assert all(v["label"] == "OK" for v in entry["connectors"].values())


def test_photos_are_camera_sized_and_reference_is_a_lossless_png(
    station: Path, labels: list[dict]
) -> None:
    reference = cv2.imread(str(station / "boards" / "reference.png"))
    assert reference.shape == (960, 1280, 3)
    photo = cv2.imread(str(station / "boards" / labels[0]["image"]))
    assert photo.shape == (960, 1280, 3)
    assert labels[0]["image"].endswith(".jpg")


def test_three_connectors_never_have_ko_and_six_have_ko_in_val_and_test(
    station: Path, labels: list[dict]
) -> None:
    ko = {split: {cid: 0 for cid in CONNECTORS} for split in ("val", "test")}
    for entry in labels:
        for cid, verdict in entry["connectors"].items():
            if verdict["label"] == "KO":
                ko[entry["split"]][cid] += 1
    never = {cid for cid in CONNECTORS if ko["val"][cid] == ko["test"][cid] == 0}
    assert len(never) == 3
    for cid in CONNECTORS - never:
        assert ko["test"][cid] >= 2 and ko["val"][cid] >= 1
    for cid in never:
        for split in ("val", "test"):
            ko_folder = station / "crops" / cid / split / "ko"
            assert not ko_folder.exists() or not any(ko_folder.iterdir())


def test_crop_folders_match_the_labels(station: Path, labels: list[dict]) -> None:
    sizes = {}
    for entry in labels:
        name = Path(entry["image"]).stem + ".png"
        for cid, verdict in entry["connectors"].items():
            folder = station / "crops" / cid / entry["split"] / verdict["label"].lower()
            crop = cv2.imread(str(folder / name))
            assert crop is not None, folder / name
            assert sizes.setdefault(cid, crop.shape) == crop.shape
    for cid in CONNECTORS:
        folder = station / "crops" / cid
        assert len([*folder.glob("*/ok/*.png"), *folder.glob("*/ko/*.png")]) == BOARDS


def test_every_ko_crop_has_a_binary_mask_of_its_size(station: Path) -> None:
    ko_crops = sorted(station.glob("crops/*/*/ko/*.png"))
    assert ko_crops
    for crop_path in ko_crops:
        mask_path = crop_path.parent.parent / "ko_masks" / crop_path.name
        crop = cv2.imread(str(crop_path))
        mask = cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED)
        assert mask is not None, mask_path
        assert mask.shape == crop.shape[:2] and mask.dtype == np.uint8
        assert set(np.unique(mask)) <= {0, 255}
        assert (mask == 255).sum() > 0.01 * mask.size


def test_config_loads_and_boxes_lie_inside_the_reference(station: Path) -> None:
    config = load_config(station / "config.toml")
    assert config.station.name == "synth/aoi1" and config.station.camera == "cam1"
    assert config.station.reference_image == station / "boards" / "reference.png"
    assert config.inputs.drop_folders == {"cam1": station / "drop" / "cam1"}
    assert config.paths.models == station / "models"
    assert config.mqtt.prefix == "synth/aoi1" and config.mqtt.port == 1883
    assert set(config.connectors) == CONNECTORS
    reference = cv2.imread(str(config.station.reference_image))
    height, width = reference.shape[:2]
    for connector in config.connectors.values():
        x, y, w, h = connector.box
        assert 60 <= max(w, h) <= 220 and min(w, h) >= 60
        assert x + w <= width and y + h <= height


def test_summary_counts_what_was_written(generated: tuple[Path, StationSummary]) -> None:
    station, summary = generated
    assert summary.boards == split_sizes(BOARDS)
    for cid, counts in summary.crops.items():
        for folder, count in counts.items():
            split, label = folder.split("/")
            assert len(list((station / "crops" / cid / split / label).glob("*.png"))) == count
    assert set(summary.kinds) == set(KO_KINDS)
    assert summary.lines()[0].startswith(f"station {station}")


def test_default_size_plans_about_twelve_test_and_four_val_ko_per_connector() -> None:
    ko_ids = ["J1", "J2", "J3", "J5", "J6", "J9"]
    plans = plan_boards(np.random.default_rng(0), 320, ko_ids)
    assert split_sizes(320) == {"train": 200, "val": 40, "test": 80}
    for cid in ko_ids:
        kinds = {
            split: [p.defects[cid] for p in plans if p.split == split and cid in p.defects]
            for split in ("val", "test")
        }
        assert len(kinds["test"]) == 12 and len(kinds["val"]) == 4
        assert set(kinds["test"]) == set(KO_KINDS)
    assert max(len(p.defects) for p in plans) <= 3
    assert not any(p.defects for p in plans if p.split == "train")


def test_too_few_boards_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least"):
        generate_station(tmp_path, boards=5, progress=False)
    assert main(["synth", "--out", str(tmp_path), "--boards", "5"]) == 2
