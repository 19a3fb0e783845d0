"""The MQTT image spool: image messages written durably into `<state>/inbox/<camera>/`.

An image acknowledged to the broker is on disk before the acknowledgement; the inbox watcher of
its camera then takes it by the same path as a camera's file, so de-duplication and quarantine
work the same for both.
"""

from __future__ import annotations

import base64
import binascii
import json
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent.contracts.atomic import write_bytes_atomic
from edge_agent.contracts.verdict import new_result_id, safe_part_id
from edge_agent.inputs.drop_folder import DropFile

SEPARATOR = "@"
MQTT_CAMERA = "mqtt:"
"""Prefix of a spooled camera's watcher name (the camera `cam1` is watched as `mqtt:cam1`)."""


def unwrap(payload: bytes, properties: dict) -> tuple[bytes, str | None]:
    """The image bytes and part id of a message: raw bytes, or a JSON envelope with base64."""
    part_id = safe_part_id(properties.get("part_id"))
    data = payload
    if payload[:1] == b"{":
        try:
            envelope = json.loads(payload)
            part_id = safe_part_id(envelope.get("part_id")) or part_id
            data = base64.b64decode(envelope["image"], validate=True)
        except (ValueError, KeyError, TypeError, AttributeError, binascii.Error):
            data = payload  # kept as it came; decoding fails and quarantines it
    return data, part_id


class ImageSpool:
    """Writes image messages into the inbox; a camera seen for the first time gets a watcher."""

    def __init__(self, inbox: Path, watch: Callable[[str, Path], object]) -> None:
        self.inbox = inbox
        self._watch = watch

    def folders(self) -> dict[str, Path]:
        """The inbox folders already on disk, by watcher name (`mqtt:<camera>`)."""
        self.inbox.mkdir(parents=True, exist_ok=True)
        return {f"{MQTT_CAMERA}{p.name}": p for p in self.inbox.iterdir() if p.is_dir()}

    def on_message(self, topic: str, payload: bytes, properties: dict) -> None:
        """MQTT handler of `<prefix>/image/<camera>`: spool the image before it is acknowledged."""
        camera = topic.rsplit("/", 1)[-1]
        data, part_id = unwrap(payload, properties)
        folder = self.inbox / camera
        if not folder.is_dir():
            folder.mkdir(parents=True, exist_ok=True)
            self._watch(f"{MQTT_CAMERA}{camera}", folder)
        write_bytes_atomic(folder / f"{part_id or ''}{SEPARATOR}{new_result_id()}", data)


def describe(drop: DropFile, spooled: bool, prefix: str) -> tuple[str | None, str, str]:
    """Part id, source URI and capture time of an input file (spooled or from a camera)."""
    stem = drop.path.name
    if spooled:
        part_id = safe_part_id(stem.split(SEPARATOR, 1)[0])
        uri = f"mqtt://{prefix}/image/{drop.camera}"
    else:
        part_id = safe_part_id(Path(stem).stem)
        uri = drop.path.as_uri()
    return part_id, uri, _mtime_iso(drop.path)


def _mtime_iso(path: Path) -> str:
    try:
        stamp = path.stat().st_mtime
    except OSError:
        stamp = time.time()
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + f".{int(stamp % 1 * 1000):03d}Z"
