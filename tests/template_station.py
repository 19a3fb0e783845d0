"""A station with one template model (no training) for the drop-folder name tests.

Boards are the reference photo with a little sensor noise of their own, so each registers,
scores OK and has content of its own (its own sha256).
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from onnx_fixtures import install_template_model

PREFIX = "plant/line9/aoi1"
CAMERA = "cam1"


def reference() -> np.ndarray:
    """The reference photo: blurred noise, which registers well against itself."""
    rng = np.random.default_rng(0)
    return cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (5, 5), 0)


def board_png(seed: int) -> bytes:
    """A board photo: the reference with noise of its own (its own content)."""
    noise = np.random.default_rng(seed).integers(-2, 3, (240, 320, 3))
    board = np.clip(reference().astype(int) + noise, 0, 255).astype(np.uint8)
    return cv2.imencode(".png", board)[1].tobytes()


def write_station(root: Path, *, mqtt: bool = True, storage: tuple[str, ...] = ()) -> Path:
    """Reference, connector J1's template model and `edge.toml` under `root`; the config path.

    `storage`: more `key = value` lines for `[storage]`."""
    cv2.imwrite(str(root / "reference.png"), reference())
    template = reference()[10:50, 10:70].astype(np.float32)
    install_template_model(root / "models", "J1", "2026-01-01.1", template, 16, 1e4)
    lines = [
        "[station]",
        'reference_image = "reference.png"',
        "[inputs]",
        f'drop_folders = {{ {CAMERA} = "drop/{CAMERA}" }}',
        "settle_s = 0.05",
        "[mqtt]",
        f"enabled = {str(mqtt).lower()}",
        f'prefix = "{PREFIX}"',
        "stats_interval_s = 3600",
        "[scoring]",
        "workers = 1",
        "[storage]",
        "min_free_mb = 1",
        "crops_min_free_mb = 1",
        *storage,
        "[health]",
        f"enabled = {str(mqtt).lower()}",
        "[retention]",
        "keep_crops = false",
        "[connectors.J1]",
        "box = [10, 10, 60, 40]",
    ]
    (root / "edge.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "edge.toml"
