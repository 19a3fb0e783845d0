"""The station set-up: connector boxes and ROIs as the page edits them, saved back to the files.

`config.toml` is edited in place (tomlkit keeps its comments and order), checked by the same
loader the agent uses, and replaced atomically after the previous file is kept as
`config.toml.bak`. ROIs go to the ROI JSON (`training.roi_file`, else `rois.json` beside the
config, which is then named in `[training]`) in model-input pixels: `{"J1": [y1, y2, x1, x2]}`.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from pydantic import BaseModel, Field
from tomlkit.items import Table

from edge_agent.contracts.atomic import write_json_atomic
from edge_agent.contracts.config import ConfigError, StationConfig, load_config
from edge_agent.contracts.names import ConnectorId

DEFAULT_ROI_FILE = "rois.json"
BACKUP_SUFFIX = ".bak"


class SetupError(ValueError):
    """A layout that cannot be saved; the message says what to change."""


class BoxLayout(BaseModel):
    """One connector as the set-up page sends it: box in reference pixels, ROI in crop pixels."""

    id: ConnectorId
    box: tuple[int, int, int, int]
    enabled: bool = True
    roi: tuple[int, int, int, int] | None = None


class Layout(BaseModel):
    """Every connector of the station, in the page's order."""

    connectors: list[BoxLayout] = Field(max_length=64)


@dataclass(frozen=True)
class Saved:
    """What a save wrote."""

    config: Path
    backup: Path
    roi_file: Path


def roi_file_path(config: StationConfig, config_path: Path) -> Path:
    """The ROI JSON the station uses, or the default one beside the config."""
    return config.training.roi_file or config_path.resolve().parent / DEFAULT_ROI_FILE


def read_rois(path: Path) -> dict[str, list[int]]:
    """The ROI JSON as {connector: [y1, y2, x1, x2]}; empty when missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return {
        k: v
        for k, v in data.items()
        if isinstance(v, list) and len(v) == 4 and all(isinstance(n, int) for n in v)
    }


def roi_to_model(roi: tuple[int, int, int, int], box: tuple[int, int, int, int], size: int):
    """Crop-pixel (x, y, w, h) to model-input [y1, y2, x1, x2] (the crop is resized to size²)."""
    x, y, width, height = roi
    box_w, box_h = box[2], box[3]
    return [
        max(0, math.floor(y * size / box_h)),
        min(size, math.ceil((y + height) * size / box_h)),
        max(0, math.floor(x * size / box_w)),
        min(size, math.ceil((x + width) * size / box_w)),
    ]


def roi_from_model(roi: list[int], box: tuple[int, int, int, int], size: int) -> list[int]:
    """Model-input [y1, y2, x1, x2] back to crop-pixel [x, y, w, h] for the page."""
    y1, y2, x1, x2 = roi
    box_w, box_h = box[2], box[3]
    x, y = round(x1 * box_w / size), round(y1 * box_h / size)
    return [x, y, round(x2 * box_w / size) - x, round(y2 * box_h / size) - y]


def current_layout(config: StationConfig, config_path: Path) -> list[dict]:
    """The station's connectors with their ROIs in crop pixels, for the page."""
    rois = read_rois(roi_file_path(config, config_path))
    size = config.training.input_size
    return [
        {
            "id": cid,
            "box": list(c.box),
            "enabled": c.enabled,
            "roi": roi_from_model(rois[cid], c.box, size) if cid in rois else None,
        }
        for cid, c in config.connectors.items()
    ]


def _check(layout: Layout, reference_size: tuple[int, int]) -> None:
    ids = [c.id for c in layout.connectors]
    if len(set(ids)) != len(ids):
        raise SetupError(f"connector names must be unique: {sorted(ids)}")
    ref_w, ref_h = reference_size
    for c in layout.connectors:
        x, y, w, h = c.box
        if w < 8 or h < 8 or x < 0 or y < 0 or x + w > ref_w or y + h > ref_h:
            raise SetupError(
                f"{c.id}: box {list(c.box)} must be at least 8x8 and inside the "
                f"{ref_w}x{ref_h} reference image"
            )
        if c.roi is not None:
            rx, ry, rw, rh = c.roi
            if rw <= 0 or rh <= 0 or rx < 0 or ry < 0 or rx + rw > w or ry + rh > h:
                raise SetupError(f"{c.id}: ROI {list(c.roi)} must lie inside its {w}x{h} crop")


def _edited(text: str, layout: Layout, roi_name: str | None) -> str:
    document = tomlkit.parse(text)
    existing = document.get("connectors")
    if not isinstance(existing, Table):
        existing = tomlkit.table(is_super_table=True)
        document["connectors"] = existing
    for cid in [k for k in existing if k not in {c.id for c in layout.connectors}]:
        del existing[cid]
    for c in layout.connectors:
        entry = existing.get(c.id)
        if not isinstance(entry, Table):
            entry = tomlkit.table()
            existing[c.id] = entry
        entry["box"] = list(c.box)
        if c.enabled:
            entry.pop("enabled", None)
        else:
            entry["enabled"] = False
    if roi_name is not None:
        training = document.get("training")
        if training is None:
            training = tomlkit.table()
            document["training"] = training
        training["roi_file"] = roi_name
    return tomlkit.dumps(document)


def _write(path: Path, text: str) -> Path:
    """Write beside `path` under a temporary name (fsync'd); returns that name."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def save_layout(
    config_path: Path, config: StationConfig, layout: Layout, reference_size: tuple[int, int]
) -> Saved:
    """Validate, then write the ROI JSON and `config.toml` (previous one kept as `.bak`)."""
    _check(layout, reference_size)
    config_path = Path(config_path)
    roi_path = roi_file_path(config, config_path)
    names_roi_file = config.training.roi_file is None and any(c.roi for c in layout.connectors)
    text = _edited(
        config_path.read_text(encoding="utf-8"),
        layout,
        DEFAULT_ROI_FILE if names_roi_file else None,
    )
    tmp = _write(config_path, text)
    try:
        load_config(tmp)
    except ConfigError as exc:
        tmp.unlink(missing_ok=True)
        raise SetupError(str(exc).replace(str(tmp), config_path.name)) from None
    rois = read_rois(roi_path)
    size = config.training.input_size
    for c in layout.connectors:
        rois.pop(c.id, None)
        if c.roi is not None:
            rois[c.id] = roi_to_model(c.roi, c.box, size)
    for cid in [k for k in rois if k not in {c.id for c in layout.connectors}]:
        del rois[cid]
    write_json_atomic(roi_path, rois)
    backup = config_path.with_name(config_path.name + BACKUP_SUFFIX)
    backup_tmp = backup.with_name(f".{backup.name}.{os.getpid()}.tmp")
    shutil.copy2(config_path, backup_tmp)
    os.replace(backup_tmp, backup)
    os.replace(tmp, config_path)
    return Saved(config_path, backup, roi_path)
