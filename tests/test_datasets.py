"""A connector's crop folders: loaded, split stably, and every unusable file named."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from trainer.datasets import DataError, in_holdout, load_connector_data

H, W = 20, 30


def crop(seed: int, size: tuple[int, int] = (H, W)) -> np.ndarray:
    return np.random.default_rng(seed).integers(40, 200, (*size, 3), dtype=np.uint8)


def write_crops(folder: Path, names: list[str], size: tuple[int, int] = (H, W)) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        assert cv2.imwrite(str(folder / name), crop(index, size))


def names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:03d}.png" for i in range(count)]


@pytest.fixture
def full_layout(tmp_path: Path) -> Path:
    root = tmp_path / "J1"
    write_crops(root / "train" / "ok", names("ok", 12))
    write_crops(root / "val" / "ok", names("val", 4))
    write_crops(root / "val" / "ko", names("bent", 2))
    write_crops(root / "test" / "ok", names("t-ok", 3))
    write_crops(root / "test" / "ko", ["missing_pin.png", "no_mask.png"])
    mask = np.zeros((H * 2, W * 2), np.uint8)  # drawn at twice the crop size
    mask[10:20, 30:50] = 255
    (root / "test" / "ko_masks").mkdir()
    cv2.imwrite(str(root / "test" / "ko_masks" / "missing_pin.png"), mask)
    (root / "train" / "ok" / "notes.txt").write_text("not an image")
    return root


def test_full_layout_loads(full_layout: Path) -> None:
    data = load_connector_data(full_layout)

    assert data.name == "J1"
    assert data.crop_size == (H, W)
    assert data.holdout_source == "val"
    sizes = [len(s) for s in (data.train, data.holdout_ok, data.holdout_ko, data.test_ok)]
    assert sizes == [12, 4, 2, 3]
    assert data.train.images.shape == (12, H, W, 3) and data.train.images.dtype == np.uint8
    np.testing.assert_array_equal(data.train.images[0], crop(0))
    assert [p.name for p in data.test_ko.paths] == ["missing_pin.png", "no_mask.png"]


def test_ground_truth_masks_are_matched_by_name_and_resized(full_layout: Path) -> None:
    data = load_connector_data(full_layout)

    mask, absent = data.test_ko_masks
    assert absent is None
    assert mask.shape == (H, W) and set(np.unique(mask)) == {0, 1}
    assert mask[5:10, 15:25].all() and mask.sum() == 5 * 10


def test_without_val_ok_a_stable_share_is_held_out(tmp_path: Path) -> None:
    root = tmp_path / "J2"
    write_crops(root / "train" / "ok", names("ok", 30))

    data = load_connector_data(root, holdout_fraction=0.2)

    held = {p.name for p in data.holdout_ok.paths}
    trained = {p.name for p in data.train.paths}
    assert data.holdout_source == "split"
    assert held and trained and not held & trained
    assert held | trained == set(names("ok", 30))
    assert held == {n for n in names("ok", 30) if in_holdout(Path(n), 0.2)}
    assert len(data.holdout_ok.images) == len(held)


def test_hold_out_side_of_a_file_never_changes(tmp_path: Path) -> None:
    root = tmp_path / "J2"
    write_crops(root / "train" / "ok", names("ok", 30))
    before = load_connector_data(root)

    moved = tmp_path / "copied" / "J2"
    shutil.copytree(root, moved)
    write_crops(moved / "train" / "ok", names("ok", 60))  # a month later: twice the crops
    after = load_connector_data(moved)

    held_before = {p.name for p in before.holdout_ok.paths}
    held_after = {p.name for p in after.holdout_ok.paths}
    assert held_before == held_after & set(names("ok", 30))
    assert not held_before & {p.name for p in after.train.paths}


@pytest.mark.parametrize("state", ["missing", "empty", "only-text"])
def test_no_training_images_names_the_folder(tmp_path: Path, state: str) -> None:
    root = tmp_path / "J3"
    root.mkdir()
    if state != "missing":
        (root / "train" / "ok").mkdir(parents=True)
    if state == "only-text":
        (root / "train" / "ok" / "readme.txt").write_text("crops go here")

    with pytest.raises(DataError, match="no OK training images") as error:
        load_connector_data(root)

    assert str(root / "train" / "ok") in str(error.value)


def test_missing_connector_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found") as error:
        load_connector_data(tmp_path / "J9")

    assert str(tmp_path / "J9") in str(error.value)


def test_truncated_png_is_named(tmp_path: Path) -> None:
    root = tmp_path / "J4"
    write_crops(root / "train" / "ok", names("ok", 6))
    bad = root / "train" / "ok" / "ok003.png"
    bad.write_bytes(bad.read_bytes()[:-40])

    with pytest.raises(DataError) as error:
        load_connector_data(root)

    assert str(error.value).startswith(f"{bad}: ")


def test_crop_of_another_size_is_named(tmp_path: Path) -> None:
    root = tmp_path / "J5"
    write_crops(root / "train" / "ok", names("ok", 6))
    odd = root / "train" / "ok" / "zz-recut.png"
    cv2.imwrite(str(odd), crop(0, (H, W + 4)))

    with pytest.raises(DataError, match="mixed sizes") as error:
        load_connector_data(root)

    assert str(error.value).startswith(f"{odd}: ")
    assert f"{W + 4}x{H}" in str(error.value)


def test_validation_crop_of_another_size_is_named(tmp_path: Path) -> None:
    root = tmp_path / "J5"
    write_crops(root / "train" / "ok", names("ok", 6))
    write_crops(root / "val" / "ko", ["bent.png"], size=(H + 2, W))

    with pytest.raises(DataError, match="mixed sizes") as error:
        load_connector_data(root)

    assert str(root / "val" / "ko" / "bent.png") in str(error.value)


def test_gray_rgba_and_16_bit_crops_become_8_bit_bgr(tmp_path: Path) -> None:
    folder = tmp_path / "J6" / "train" / "ok"
    write_crops(folder, names("ok", 4))
    gray = np.full((H, W), 90, np.uint8)
    rgba = np.dstack([crop(1), np.full((H, W), 128, np.uint8)])
    deep = np.full((H, W, 3), 200 * 257, np.uint16)
    for name, image in [("gray.png", gray), ("rgba.png", rgba), ("deep.png", deep)]:
        assert cv2.imwrite(str(folder / name), image)

    data = load_connector_data(tmp_path / "J6", holdout_fraction=0.5)

    everything = {
        p.name: image
        for split in (data.train, data.holdout_ok)
        for p, image in zip(split.paths, split.images, strict=True)
    }
    assert len(everything) == 7
    assert all(
        image.shape == (H, W, 3) and image.dtype == np.uint8 for image in everything.values()
    )
    assert (everything["gray.png"] == 90).all()
    np.testing.assert_array_equal(everything["rgba.png"], crop(1))
    assert (everything["deep.png"] == 200).all()
