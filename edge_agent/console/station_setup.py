"""The station set-up: connector boxes and ROIs as the page edits them, saved back to the files.

`config.toml` is edited in place (tomlkit keeps its comments and order), checked by the same
loader the agent uses, and replaced atomically after the previous file is kept as a timestamped
backup (`setup_backups`). A save names the sha256 of the file its page was built from and is
refused when the file changed since; a box whose size no longer matches the input of the
connector's active model is refused (a move is fine), and a connector without a model is saved
disabled. ROIs go to the ROI JSON (`training.roi_file`, else `rois.json` beside the
config, which is then named in `[training]`) in model-input pixels: `{"J1": [y1, y2, x1, x2]}`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass
from pathlib import Path

import tomlkit
from pydantic import BaseModel, Field
from tomlkit.items import Table

from edge_agent.console.setup_backups import file_sha256, find_backup, keep_backup, who_changed
from edge_agent.contracts.atomic import move_atomic, temporary_name, write_json_atomic
from edge_agent.contracts.bundle import BundleError, active_dir, read_manifest
from edge_agent.contracts.config import ConfigError, StationConfig, load_config
from edge_agent.contracts.names import ConnectorId

DEFAULT_ROI_FILE = "rois.json"


class SetupError(ValueError):
    """A layout that cannot be saved; the message says what to change."""


class StaleConfig(SetupError):
    """The page was built from an older `config.toml` than the one on disk."""


class NeedsRetrain(SetupError):
    """A box whose size no longer fits its model: only "save and retrain" can make it."""


class BoxLayout(BaseModel):
    """One connector as the set-up page sends it: box in reference pixels, ROI in crop pixels."""

    id: ConnectorId
    box: tuple[int, int, int, int]
    enabled: bool = True
    roi: tuple[int, int, int, int] | None = None


class Layout(BaseModel):
    """Every connector of the station, in the page's order."""

    connectors: list[BoxLayout] = Field(max_length=64)
    base_sha256: str | None = Field(
        default=None, description="sha256 of the config.toml the page was built from"
    )


@dataclass(frozen=True)
class Saved:
    """What a save wrote."""

    config: Path
    backup: Path
    roi_file: Path
    sha256: str
    changes: list[str]


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
    tmp = temporary_name(path)
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    return tmp


def model_input(models_root: Path, connector: str) -> tuple[int, int] | None:
    """(width, height) of the crop the connector's active model takes; None without a model."""
    bundle = active_dir(models_root, connector)
    if bundle is None:
        return None
    try:
        spec = read_manifest(bundle).input
    except BundleError:
        return None
    return spec.width, spec.height


def _check_inputs(layout: Layout, models_root: Path) -> list[str]:
    """Refuse a box whose size no longer fits its model; returns the connectors without one."""
    refused, without_model = [], []
    for c in layout.connectors:
        size = model_input(models_root, c.id)
        if size is None:
            without_model.append(c.id)
        elif size != (c.box[2], c.box[3]):
            refused.append(
                f"{c.id}: the box is {c.box[2]}x{c.box[3]} but its model takes "
                f"{size[0]}x{size[1]} crops"
            )
    if refused:
        raise NeedsRetrain(
            "; ".join(refused) + ". Changing a box's size needs a new model: move the box "
            "without resizing it, put the size back, or choose Save and retrain"
        )
    return without_model


def describe_changes(config: StationConfig, layout: Layout) -> list[str]:
    """What a save changes, in plain words, for the backup list."""
    changes = []
    new = {c.id: c for c in layout.connectors}
    for cid in config.connectors:
        if cid not in new:
            changes.append(f"{cid} removed")
    for cid, c in new.items():
        old = config.connectors.get(cid)
        if old is None:
            changes.append(f"{cid} added at {list(c.box)}")
            continue
        if tuple(old.box) != tuple(c.box):
            verb = "moved" if old.box[2:] == c.box[2:] else "resized"
            changes.append(f"{cid} {verb} {list(old.box)} -> {list(c.box)}")
        if old.enabled != c.enabled:
            changes.append(f"{cid} {'enabled' if c.enabled else 'disabled'}")
    return changes or ["no box changed (ROIs or a rewrite)"]


def save_layout(
    config_path: Path,
    config: StationConfig,
    layout: Layout,
    reference_size: tuple[int, int],
    *,
    models_root: Path | None = None,
    by: str = "the set-up page",
    changes: list[str] | None = None,
) -> Saved:
    """Validate, then write the ROI JSON and `config.toml` (previous one kept as a backup).

    With `models_root`, boxes are checked against the active models' inputs and a connector
    without a model is written disabled. `layout.base_sha256`, when given, must be the hash of
    the file as it is now.
    """
    _check(layout, reference_size)
    config_path = Path(config_path)
    current = config_path.read_bytes()
    current_sha = hashlib.sha256(current).hexdigest()
    if layout.base_sha256 is not None and layout.base_sha256 != current_sha:
        raise StaleConfig(
            f"{config_path.name} changed since this page was loaded "
            f"({who_changed(config_path, current_sha)}): reload the page"
        )
    if models_root is not None:
        without_model = set(_check_inputs(layout, models_root))
        layout = Layout(
            connectors=[
                c.model_copy(update={"enabled": False}) if c.id in without_model else c
                for c in layout.connectors
            ],
            base_sha256=layout.base_sha256,
        )
    if changes is None:
        changes = describe_changes(config, layout)
    roi_path = roi_file_path(config, config_path)
    names_roi_file = config.training.roi_file is None and any(c.roi for c in layout.connectors)
    text = _edited(
        current.decode("utf-8"),
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
    written_sha = file_sha256(tmp)
    backup = keep_backup(config_path, by, changes, written_sha)
    move_atomic(tmp, config_path)
    return Saved(config_path, backup.path, roi_path, written_sha, changes)


def restore_backup(
    config_path: Path,
    name: str,
    base_sha256: str,
    *,
    models_root: Path | None = None,
    by: str = "the set-up page",
) -> Saved:
    """Put a kept backup back as `config.toml`: itself a save (hash-checked, backed up)."""
    config_path = Path(config_path)
    backup = find_backup(config_path, name)
    if backup is None:
        raise SetupError(f"no backup named {name!r}: reload the page")
    current_sha = file_sha256(config_path)
    if base_sha256 != current_sha:
        raise StaleConfig(
            f"{config_path.name} changed since this page was loaded "
            f"({who_changed(config_path, current_sha)}): reload the page"
        )
    try:
        restored = load_config(backup.path)
    except ConfigError as exc:
        raise SetupError(f"backup {name} is not a valid config: {exc}") from None
    if models_root is not None:
        layout = Layout(
            connectors=[
                BoxLayout(id=cid, box=c.box, enabled=c.enabled)
                for cid, c in restored.connectors.items()
            ]
        )
        _check_inputs(layout, models_root)
    tmp = _write(config_path, backup.path.read_text(encoding="utf-8"))
    written_sha = file_sha256(tmp)
    kept = keep_backup(config_path, by, [f"restored the backup of {backup.saved_at}"], written_sha)
    move_atomic(tmp, config_path)
    return Saved(config_path, kept.path, roi_file_path(restored, config_path), written_sha, [])
