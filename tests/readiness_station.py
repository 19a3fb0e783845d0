"""A small real station for readiness tests: a reference photo and two connectors, each with a
real ONNX model (a template graph that onnxruntime runs), and its `edge.toml`."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from onnx_fixtures import install_template_model

PREFIX = "plant/line7/aoi1"
BOXES = {"J1": (10, 10, 60, 40), "J2": (120, 80, 60, 40)}


def write_station(root: Path, enabled: bool = True) -> Path:
    """A station folder: reference photo, a model per connector, `edge.toml`."""
    rng = np.random.default_rng(0)
    reference = cv2.GaussianBlur(rng.integers(0, 255, (240, 320, 3), dtype=np.uint8), (5, 5), 0)
    root.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(root / "reference.png"), reference)
    for cid, (x, y, w, h) in BOXES.items():
        template = reference[y : y + h, x : x + w].astype(np.float32)
        install_template_model(root / "models", cid, "2026-01-01.1", template, 16, 1e4)
    lines = [
        "[station]",
        'reference_image = "reference.png"',
        "[inputs]",
        'drop_folders = { cam1 = "drop/cam1" }',
        "[mqtt]",
        f'prefix = "{PREFIX}"',
        "stats_interval_s = 3600",
        "[scoring]",
        "workers = 1",
        *(
            f"[connectors.{cid}]\nbox = {list(box)}\nenabled = {str(enabled).lower()}"
            for cid, box in BOXES.items()
        ),
    ]
    (root / "edge.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return root / "edge.toml"
