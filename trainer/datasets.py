"""A connector's crop data set in the station layout, loaded and checked.

<connector>/train/ok/   OK crops to learn from (required)
<connector>/val/ok/     held-out OK for calibration (else a stable share of train/ok)
<connector>/val/ko/     KO for calibration (optional)
<connector>/test/ok/, test/ko/, test/ko_masks/   evaluation only (optional)
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_agent.inspect.imaging import DecodeError, read_image_file

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


class DataError(ValueError):
    """The data set cannot be used as it is; the message names the folder or file."""


@dataclass
class CropSet:
    """Crops of one connector, one split: paths and (N, H, W, 3) uint8 BGR pixels."""

    paths: list[Path]
    images: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class ConnectorData:
    name: str
    train: CropSet
    holdout_ok: CropSet
    holdout_ko: CropSet
    test_ok: CropSet
    test_ko: CropSet
    test_ko_masks: list[np.ndarray | None] = field(default_factory=list)
    holdout_source: str = "val"

    @property
    def crop_size(self) -> tuple[int, int]:
        return self.train.images.shape[1], self.train.images.shape[2]


def require_test_split(data: ConnectorData, root: Path) -> None:
    """The report scores the test split: refuse early, before any training, when it is empty."""
    if not len(data.test_ok) and not len(data.test_ko):
        raise DataError(f"{Path(root) / 'test'}: no test crops (test/ok, test/ko) to report on")


def list_images(folder: Path) -> list[Path]:
    """Image files of a folder, sorted by name; [] when the folder does not exist."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def load_crops(paths: list[Path], size: tuple[int, int] | None = None) -> CropSet:
    """Decode crops (gray, RGBA and 16-bit become 8-bit BGR) that must all share one size.

    Without `size`, the size most of them have is the connector's size.
    """
    images = []
    for path in paths:
        try:
            images.append(read_image_file(path))
        except DecodeError as exc:
            raise DataError(str(exc)) from None
    if not images:
        return CropSet([], np.zeros((0, *(size or (1, 1)), 3), np.uint8))
    size = size or Counter(image.shape[:2] for image in images).most_common(1)[0][0]
    for path, image in zip(paths, images, strict=True):
        if image.shape[:2] != size:
            raise DataError(
                f"{path}: crop is {image.shape[1]}x{image.shape[0]} but this connector's crops "
                f"are {size[1]}x{size[0]} (mixed sizes: was it cut with another box?)"
            )
    return CropSet(list(paths), np.stack(images))


def in_holdout(path: Path, fraction: float) -> bool:
    """Stable membership by file name, so a crop never moves between training and hold-out."""
    digest = hashlib.sha256(path.name.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < fraction


def _subset(crops: CropSet, keep: np.ndarray) -> CropSet:
    return CropSet([p for p, k in zip(crops.paths, keep, strict=True) if k], crops.images[keep])


def _load_mask(path: Path, size: tuple[int, int]) -> np.ndarray | None:
    if not path.is_file():
        return None
    mask = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
    if mask is None:
        raise DataError(f"{path}: unreadable ground-truth mask")
    if mask.shape != size:
        mask = cv2.resize(mask, (size[1], size[0]), interpolation=cv2.INTER_NEAREST)
    return (mask > 127).astype(np.uint8)


def load_connector_data(root: Path, holdout_fraction: float = 0.2) -> ConnectorData:
    """Load and check every split of one connector's folder."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: connector data folder not found")
    train_paths = list_images(root / "train" / "ok")
    if not train_paths:
        raise DataError(f"{root / 'train' / 'ok'}: no OK training images (missing or empty)")
    train = load_crops(train_paths)
    size = train.images.shape[1:3]
    holdout = load_crops(list_images(root / "val" / "ok"), size)
    source = "val"
    if not len(holdout):
        source = "split"
        held = np.array([in_holdout(p, holdout_fraction) for p in train_paths])
        if held.all() or not held.any():
            raise DataError(f"{root / 'train' / 'ok'}: too few OK images to hold some out")
        holdout = _subset(train, held)
        train = _subset(train, ~held)
    test_ko = load_crops(list_images(root / "test" / "ko"), size)
    masks = [_load_mask(root / "test" / "ko_masks" / p.name, size) for p in test_ko.paths]
    return ConnectorData(
        name=root.name,
        train=train,
        holdout_ok=holdout,
        holdout_ko=load_crops(list_images(root / "val" / "ko"), size),
        test_ok=load_crops(list_images(root / "test" / "ok"), size),
        test_ko=test_ko,
        test_ko_masks=masks,
        holdout_source=source,
    )


def data_fingerprint(paths: list[Path]) -> str:
    """sha256 over the names and bytes of the training files: what the model learned from."""
    digest = hashlib.sha256()
    for path in sorted(paths, key=lambda p: p.name):
        digest.update(path.name.encode())
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()
